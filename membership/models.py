"""Data of the membership programme: VIP groups, tiers, members, tags, orders.

Rules live in ``membership.services``; this module holds fields, constraints and
small derived properties only.
"""

import datetime as dt

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from membership.bounds import bounded

# A badge colour as the colour picker writes it, and as CSS reads it: #RRGGBB.
COLOUR_PATTERN = r"^#[0-9A-Fa-f]{6}$"


class Metric(models.TextChoices):
    SPEND = "spend", _("Spend (NT$)")
    ORDER_COUNT = "order_count", _("Order count")
    # Points earned from orders, actions, referrals and birthday bonuses in the window, less
    # refunds; never lowered by redemption or expiry (rules.GROWTH_POINTS_SQL).
    GROWTH_POINTS = "growth_points", _("Growth points")


class Window(models.TextChoices):
    ROLLING_12_MONTHS = "rolling_12m", _("Rolling 12 months")
    CALENDAR_YEAR = "calendar_year", _("Calendar year")
    LIFETIME = "lifetime", _("Lifetime")


class EntryRequires(models.TextChoices):
    EITHER = "either", _("A tag or the qualifying amount")
    BOTH = "both", _("A tag and the qualifying amount")


class Tag(models.Model):
    class Kind(models.TextChoices):
        OPERATOR = "operator", _("Operator tag")
        SYSTEM = "system", _("System tag")

    name = models.CharField(_("name"), max_length=50, unique=True)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind, default=Kind.OPERATOR)
    description = models.CharField(_("description"), max_length=200, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")

    def __str__(self) -> str:
        return self.name


class VipGroup(models.Model):
    """A VIP group. ``priority`` 1 is checked first; the default group is the fallback."""

    name = models.CharField(_("name"), max_length=50, unique=True)
    description = models.TextField(_("description"), blank=True)
    priority = bounded(models.PositiveIntegerField(_("priority"), default=0, db_index=True))
    is_default = models.BooleanField(
        _("default group"),
        default=False,
        help_text=_("Members who meet no other group's entry condition belong here."),
    )
    entry_tags = models.ManyToManyField(
        Tag, blank=True, related_name="entry_for_groups", verbose_name=_("entry tags")
    )
    entry_amount = bounded(
        models.PositiveBigIntegerField(
            _("qualifying amount"),
            null=True,
            blank=True,
            help_text=_("Spend (NT$) in this group's window that admits a member; blank for none."),
        )
    )
    entry_requires = models.CharField(
        _("entry condition"), max_length=10, choices=EntryRequires, default=EntryRequires.EITHER
    )
    metric = models.CharField(_("qualifying metric"), max_length=20, choices=Metric)
    window = models.CharField(_("window"), max_length=20, choices=Window)
    review_period_months = bounded(
        models.PositiveSmallIntegerField(_("review period (months)"), default=12), minimum=1
    )
    review_warning_days = bounded(
        models.PositiveSmallIntegerField(
            _("review warning (days before)"),
            default=30,
            # A year at most: a warning further off than any review period says nothing.
            validators=[
                MaxValueValidator(
                    365, _("A review warning is sent at most 365 days before the review.")
                )
            ],
            help_text=_(
                "A member below their tier's retention threshold is warned this many days "
                "before their review; 0 sends no warning."
            ),
        )
    )

    class Meta:
        ordering = ["priority", "id"]
        verbose_name = _("VIP group")
        verbose_name_plural = _("VIP groups")
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="one_default_vip_group",
                violation_error_message=_("Exactly one VIP group is the default."),
            ),
            models.CheckConstraint(
                condition=Q(review_period_months__gte=1),
                name="vip_group_review_at_least_a_month",
                violation_error_message=_("The review period is at least one month."),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Tier(models.Model):
    """A tier inside a VIP group. Rank 1 is the base tier."""

    group = models.ForeignKey(
        VipGroup, on_delete=models.PROTECT, related_name="tiers", verbose_name=_("VIP group")
    )
    rank = bounded(models.PositiveSmallIntegerField(_("rank")), minimum=1)
    name = models.CharField(_("name"), max_length=50)
    badge_colour = models.CharField(
        _("badge colour"),
        max_length=7,
        default="#9e9e9e",
        validators=[
            RegexValidator(
                COLOUR_PATTERN,
                _("Enter a colour as # and six hexadecimal digits, e.g. #c0c0c0."),
                code="colour",
            )
        ],
        help_text=_("# and six hexadecimal digits, e.g. #c0c0c0."),
    )
    upgrade_threshold = bounded(models.PositiveBigIntegerField(_("upgrade threshold")))
    retention_threshold = bounded(models.PositiveBigIntegerField(_("retention threshold")))
    discount_percent = models.DecimalField(
        _("discount (percent off the price)"),
        max_digits=4,
        decimal_places=1,
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text=_("From 0 to 100: 5 takes 5 percent off the price."),
    )
    points_per_100 = bounded(
        models.PositiveSmallIntegerField(
            _("points per NT$100"), default=1, help_text=_("Points earned for every NT$100 spent.")
        )
    )
    free_shipping = models.BooleanField(_("free shipping"), default=False)
    birthday_perk = models.CharField(_("birthday perk"), max_length=200, blank=True)
    upgrade_gift = models.CharField(
        _("upgrade gift"),
        max_length=200,
        blank=True,
        help_text=_("Given once when a member reaches this tier; blank for none."),
    )

    class Meta:
        ordering = ["group__priority", "rank"]
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        constraints = [
            models.UniqueConstraint(fields=["group", "rank"], name="tier_rank_unique_in_group"),
            models.UniqueConstraint(fields=["group", "name"], name="tier_name_unique_in_group"),
            models.CheckConstraint(
                condition=Q(retention_threshold__lte=F("upgrade_threshold")),
                name="tier_retention_not_above_upgrade",
                violation_error_message=_(
                    "The retention threshold cannot be above the upgrade threshold."
                ),
            ),
            models.CheckConstraint(condition=Q(rank__gte=1), name="tier_rank_from_one"),
            models.CheckConstraint(
                condition=Q(discount_percent__gte=0, discount_percent__lte=100),
                name="tier_discount_within_0_100",
                violation_error_message=_("The discount is between 0 and 100 %."),
            ),
            models.CheckConstraint(
                condition=Q(badge_colour__regex=COLOUR_PATTERN),
                name="tier_badge_colour_rrggbb",
                violation_error_message=_(
                    "Enter a colour as # and six hexadecimal digits, e.g. #c0c0c0."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.group.name} · {self.name}"

    def clean(self) -> None:
        # The constraint says it too; here the message lands beside the field.
        up, keep = self.upgrade_threshold, self.retention_threshold
        if up is not None and keep is not None and keep > up:
            raise ValidationError(
                {
                    "retention_threshold": _(
                        "The retention threshold cannot be above the upgrade threshold."
                    )
                }
            )


class TierBenefit(models.Model):
    """One line of a tier's free-text benefits, in the order the operator dragged them."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="benefits")
    position = bounded(models.PositiveIntegerField(_("position"), default=0, db_index=True))
    text = models.CharField(_("benefit"), max_length=200)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("benefit")
        verbose_name_plural = _("benefits")

    def __str__(self) -> str:
        return self.text


class Member(models.Model):
    class Language(models.TextChoices):
        ZH_HANT = "zh-hant", "繁體中文"
        EN = "en", "English"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="member",
        verbose_name=_("login user"),
    )
    # Unique, phone and e-mail indexes are declared in Meta: a field's own unique=True or
    # db_index=True adds a LIKE twin on PostgreSQL that no query here uses, and every
    # index costs each write of a member (a cold recompute rewrites every row).
    external_id = models.CharField(_("external id"), max_length=64, null=True, blank=True)
    name = models.CharField(_("full name"), max_length=100)
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    email = models.EmailField(_("e-mail"), blank=True)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    language = models.CharField(
        _("language"), max_length=8, choices=Language, default=Language.ZH_HANT
    )
    joined_at = models.DateTimeField(_("joined at"), db_index=True)
    tags = models.ManyToManyField(
        Tag, through="MemberTag", blank=True, related_name="members", verbose_name=_("tags")
    )

    # Evaluation state, written only by membership.services.
    # Indexes: (group, tier) serves group filters; the rarely-read FKs carry none, so
    # the set-based recompute maintains fewer indexes per updated row.
    group = models.ForeignKey(
        VipGroup,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="members",
        verbose_name=_("VIP group"),
        db_index=False,
    )
    earned_tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        verbose_name=_("earned tier"),
        help_text=_("The tier the group's rules give, before grants and locks."),
    )
    tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="members",
        verbose_name=_("tier"),
        help_text=_("The effective tier: the best of the earned tier, active grants and a lock."),
    )
    tier_since = models.DateTimeField(_("tier since"), null=True, blank=True)
    tier_earned_by_order = models.ForeignKey(
        "Order",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        verbose_name=_("tier earned by order"),
    )
    next_review_on = models.DateField(_("next review"), null=True, blank=True)
    locked_tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        verbose_name=_("locked tier"),
    )
    locked_until = models.DateField(_("locked until"), null=True, blank=True)
    last_order_at = models.DateTimeField(_("last order"), null=True, blank=True, db_index=True)
    tier_holder = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="tier_sharers",
        verbose_name=_("shares the tier of"),
        help_text=_(
            "An enterprise sub-account shares its master's group and tier, and its orders "
            "count toward the master's."
        ),
    )

    class Meta:
        ordering = ["-id"]
        verbose_name = _("member")
        verbose_name_plural = _("members")
        permissions = [
            ("adjust_tier", _("Can adjust a member's tier by hand")),
            ("evaluate_member", _("Can re-evaluate members")),
        ]
        indexes = [
            models.Index(fields=["group", "tier"], name="member_group_tier_idx"),
            # A phone as typed, normalised (the admin's search, the imports' matching).
            models.Index(fields=["phone"], name="member_phone_idx"),
            # The admin's search (MemberAdmin.get_search_results): a name or e-mail
            # containing or starting with what the operator typed, and an e-mail typed
            # whole — UPPER(col) LIKE '%Q%', LIKE 'Q%' and = UPPER(q), as Django writes
            # them — through trigrams (PostgreSQL only; see membership/migration_ops.py).
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="member_name_trgm_idx"),
            GinIndex(OpClass(Upper("email"), name="gin_trgm_ops"), name="member_email_trgm_idx"),
            # An e-mail typed whole: UPPER(email) = UPPER(q) reads one entry here (trigrams
            # serve equality too, but read every address sharing "@example.com").
            models.Index(Upper("email"), name="member_email_upper_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["external_id"], name="member_external_id_unique"),
            models.CheckConstraint(
                condition=~Q(tier_holder=F("pk")), name="member_not_own_tier_holder"
            ),
            models.CheckConstraint(
                condition=Q(locked_tier__isnull=True, locked_until__isnull=True)
                | Q(locked_tier__isnull=False, locked_until__isnull=False),
                name="member_lock_has_tier_and_date",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class MemberTag(models.Model):
    # No single-column indexes: the unique (member, tag) and the (tag, member) index serve
    # both lookups, and every index costs the nightly system-tag writes.
    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="member_tags", db_index=False
    )
    tag = models.ForeignKey(
        Tag, on_delete=models.PROTECT, related_name="member_tags", db_index=False
    )
    added_at = models.DateTimeField(_("added at"), auto_now_add=True)

    class Meta:
        verbose_name = _("member tag")
        verbose_name_plural = _("member tags")
        constraints = [
            models.UniqueConstraint(fields=["member", "tag"], name="member_tag_unique"),
        ]
        indexes = [models.Index(fields=["tag", "member"], name="member_tag_by_tag_idx")]

    def __str__(self) -> str:
        return f"{self.member_id}:{self.tag_id}"


class Order(models.Model):
    class Status(models.TextChoices):
        PAID = "paid", _("Paid")
        CANCELLED = "cancelled", _("Cancelled")

    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="orders", verbose_name=_("member")
    )
    source = models.CharField(
        _("source"), max_length=30, default="shop", help_text=_("The system that sent the order.")
    )
    external_id = models.CharField(_("external id"), max_length=64)
    channel = models.CharField(_("channel"), max_length=30, blank=True)
    amount = bounded(models.PositiveBigIntegerField(_("amount (NT$)")))
    refunded_amount = bounded(models.PositiveBigIntegerField(_("refunded (NT$)"), default=0))
    placed_at = models.DateTimeField(_("placed at"))
    status = models.CharField(_("status"), max_length=10, choices=Status, default=Status.PAID)
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], name="order_unique_per_source"
            ),
            models.CheckConstraint(
                condition=Q(refunded_amount__lte=F("amount")), name="order_refund_within_amount"
            ),
        ]
        indexes = [
            models.Index(fields=["member", "placed_at"], name="order_member_time_idx"),
            # The orders list's order: its first page reads 100 index entries, not a sort
            # of every order.
            models.Index(fields=["-placed_at", "-id"], name="order_placed_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_id}"


class Refund(models.Model):
    """A refund of part or all of an order; the order's ``refunded_amount`` is their sum."""

    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, related_name="refunds", verbose_name=_("order")
    )
    external_id = models.CharField(_("external id"), max_length=64)
    amount = bounded(models.PositiveBigIntegerField(_("amount (NT$)")))
    refunded_at = models.DateTimeField(_("refunded at"))
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        ordering = ["-refunded_at"]
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        constraints = [
            models.UniqueConstraint(
                fields=["order", "external_id"], name="refund_unique_per_order"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} (NT${self.amount:,})"


class TierGrant(models.Model):
    """A tier held for a period through a subscription, a points redemption or an operator."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tier_grants")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    source = models.CharField(_("source"), max_length=30)
    source_ref = models.CharField(_("source reference"), max_length=100)

    class Meta:
        verbose_name = _("tier grant")
        verbose_name_plural = _("tier grants")
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_ref"], name="tier_grant_unique_source"
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="grant_ends_after_start"
            ),
        ]
        indexes = [models.Index(fields=["member", "ends_at"], name="grant_member_end_idx")]

    def __str__(self) -> str:
        return f"{self.tier} {self.starts_at:%Y-%m-%d}–{self.ends_at:%Y-%m-%d}"


class Cause(models.TextChoices):
    ORDER = "order", _("Paid order")
    REFUND = "refund", _("Refund or cancellation")
    TAG = "tag", _("Tag change")
    REVIEW = "review", _("Review")
    MANUAL = "manual", _("Manual adjustment")
    RECOMPUTE = "recompute", _("Recompute")
    GRANT = "grant", _("Tier grant")
    CONFIGURATION = "configuration", _("Configuration change")
    VERSION = "version", _("Programme version")
    ENTERPRISE = "enterprise", _("Enterprise account change")
    IMPORT = "import", _("Import")


class TierHistory(models.Model):
    """Every change of group or tier, append-only."""

    # Read by member (the composite index) and by time; the other FKs carry no index.
    # The groups and tiers named carry no database constraint either: a recompute writes
    # a row per member moved, and checking four constraints on each at commit cost
    # about a tenth of a cold recompute. They still cannot be deleted while a row names
    # them: on_delete=PROTECT is kept by Django, and these rows are never updated.
    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="tier_history", db_index=False
    )
    from_group = models.ForeignKey(
        VipGroup,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("from group"),
    )
    from_tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("from tier"),
    )
    to_group = models.ForeignKey(
        VipGroup,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("to group"),
    )
    to_tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("to tier"),
    )
    cause = models.CharField(_("cause"), max_length=20, choices=Cause)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        db_index=False,
        verbose_name=_("actor"),
    )
    reason = models.TextField(_("reason"), blank=True)
    explanation = models.JSONField(_("explanation"), default=dict, blank=True)
    created_at = models.DateTimeField(_("time"), db_index=True)
    notified_at = models.DateTimeField(_("member notified at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("tier history")
        verbose_name_plural = _("tier history")
        indexes = [
            models.Index(
                fields=["id"], condition=Q(notified_at__isnull=True), name="history_unnotified_idx"
            ),
            models.Index(fields=["member", "created_at"], name="history_member_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{timezone.localtime(self.created_at):%Y-%m-%d %H:%M} {self.get_cause_display()}"


class GiftIssue(models.Model):
    """A tier's upgrade gift given to a member: once per member and tier, never taken back."""

    # The unique (member, tier) index serves lookups by member. The tier has no database
    # constraint, for the reason given on TierHistory; PROTECT still guards it.
    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="gifts", db_index=False
    )
    tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        verbose_name=_("tier"),
    )
    gift = models.CharField(_("gift"), max_length=200)
    issued_at = models.DateTimeField(_("issued at"))

    class Meta:
        ordering = ["-issued_at"]
        verbose_name = _("gift issued")
        verbose_name_plural = _("gifts issued")
        constraints = [
            models.UniqueConstraint(fields=["member", "tier"], name="gift_once_per_member_tier"),
        ]

    def __str__(self) -> str:
        return self.gift


class AuditEntry(models.Model):
    """One operator action: who, when, what, before, after and why. Never edited.

    On PostgreSQL a trigger refuses UPDATE and DELETE on this table (migration 0002).
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_name = models.CharField(_("actor"), max_length=150, blank=True)
    action = models.CharField(_("action"), max_length=50, db_index=True)
    object_type = models.CharField(_("object type"), max_length=50)
    object_id = models.CharField(_("object id"), max_length=64)
    object_repr = models.CharField(_("object"), max_length=200)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("time"), db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        # In words and in Asia/Taipei, as the admin's title shows it.
        from membership.audit_display import action_label, actor_label, local_time

        when, action = local_time(self.created_at), action_label(self.action)
        return f"{when} {actor_label(self)} {action} {self.object_repr}"


class NudgeKind(models.TextChoices):
    ABOUT_TO_UPGRADE = "about_to_upgrade", _("About to upgrade")
    STALLED = "stalled", _("Stalled")
    DOWNGRADE_RISK = "downgrade_risk", _("Downgrade risk")
    REVIEW_WARNING = "review_warning", _("Review warning")


class Nudge(models.Model):
    """A reason to reach a member this period (DESIGN: predictive nudges), at most once.

    ``tier`` and ``amount`` are the payload: the tier in question (the next one, or the
    one at risk) and what was still needed (NT$, or orders in an order-count group) when
    the nudge was made.
    """

    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="nudges", verbose_name=_("member")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=NudgeKind)
    period = models.CharField(
        _("period"),
        max_length=10,
        help_text=_("The month, YYYY-MM; for a review warning, the review date, YYYY-MM-DD."),
    )
    tier = models.ForeignKey(
        Tier, on_delete=models.CASCADE, related_name="+", verbose_name=_("tier")
    )
    amount = bounded(models.BigIntegerField(_("still needed")))
    created_at = models.DateTimeField(_("created at"))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("nudge")
        verbose_name_plural = _("nudges")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "kind", "period"], name="nudge_once_per_period"
            ),
        ]
        indexes = [
            models.Index(fields=["period", "kind"], name="nudge_period_kind_idx"),
            models.Index(
                fields=["created_at"],
                condition=Q(sent_at__isnull=True),
                name="nudge_unsent_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.period} {self.get_kind_display()} · {self.member_id}"

    @property
    def review_on(self) -> dt.date | None:
        """The review a review warning is about (kept as its period)."""
        if self.kind != NudgeKind.REVIEW_WARNING:
            return None
        return dt.date.fromisoformat(self.period)


class NudgeOffer(models.Model):
    """What the operator offers with each kind of nudge (a top-up offer, a retention gift).

    One offer per kind for everyone, and any number aimed at a saved audience (受眾):
    a nudged member in an offer's audience gets that offer instead (services.nudges).
    """

    kind = models.CharField(_("kind"), max_length=20, choices=NudgeKind)
    audience = models.ForeignKey(
        "segments.Audience",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="nudge_offers",
        verbose_name=_("audience"),
        help_text=_(
            "Empty: every nudged member. Otherwise only the audience's members get this "
            "offer, in place of the offer for everyone."
        ),
    )
    text = models.CharField(
        _("offer"),
        max_length=300,
        help_text=_("Shown on the member's page and in the e-mail, under the reason."),
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["kind", "audience__name"]
        verbose_name = _("nudge offer")
        verbose_name_plural = _("nudge offers")
        constraints = [
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(audience__isnull=True),
                name="nudge_offer_one_for_everyone",
                violation_error_message=_("This kind of nudge already has an offer for everyone."),
            ),
            models.UniqueConstraint(
                fields=["kind", "audience"],
                name="nudge_offer_one_per_audience",
                violation_error_message=_("This audience already has an offer for this kind."),
            ),
        ]

    def __str__(self) -> str:
        if self.audience_id:
            return f"{self.get_kind_display()} · {self.audience}"
        return str(self.get_kind_display())


class TagHistory(models.Model):
    """When a member entered and left a system tag (a segment); open while ``left_at`` is empty.

    Written only by ``services.system_tags``; operator tags are audited instead.
    """

    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="tag_history", verbose_name=_("member")
    )
    tag = models.ForeignKey(  # served by the (tag, member) index
        Tag, on_delete=models.PROTECT, related_name="history", verbose_name=_("tag"), db_index=False
    )
    entered_at = models.DateTimeField(_("entered at"))
    left_at = models.DateTimeField(_("left at"), null=True, blank=True)

    class Meta:
        ordering = ["-entered_at", "-id"]
        verbose_name = _("tag history")
        verbose_name_plural = _("tag history")
        indexes = [models.Index(fields=["tag", "member"], name="tag_history_tag_member_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["tag", "member"],
                condition=Q(left_at__isnull=True),
                name="tag_history_one_open_span",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}:{self.tag_id}"


class OutboxMessage(models.Model):
    """A follow-up owed after a commit: a Celery task to run, written in the same
    transaction as the change that owes it (``membership.outbox``).

    A row is sent after the commit and again by the sweeper while it is not done, so
    a broker that was away loses nothing. ``dispatched_at`` is the last send,
    ``started_at`` the run a worker holds now (cleared when it fails), ``done_at``
    the run that finished; ``attempts`` counts the runs started, ``last_error`` says
    why the last send or run failed.
    """

    task_name = models.CharField(_("task"), max_length=200)
    kwargs = models.JSONField(_("arguments"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"))
    dispatched_at = models.DateTimeField(_("dispatched at"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)
    attempts = bounded(models.PositiveIntegerField(_("attempts"), default=0))
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("follow-up")
        verbose_name_plural = _("follow-ups")
        indexes = [
            models.Index(
                fields=["task_name"],
                condition=Q(done_at__isnull=True),
                name="outbox_pending_idx",
            ),
            models.Index(fields=["done_at"], name="outbox_done_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} #{self.pk}"


class ProgrammeVersion(models.Model):
    """A version of the tier rules: each group's entry amount, metric, window and review
    period, and each tier's upgrade and retention thresholds.

    One version is live; its values are also written into the ``VipGroup`` and ``Tier``
    columns when it goes live (``membership.services.versions`` is their only writer), so
    the hot path reads them without a join. Drafts are edited here and published from a
    date; a seasonal version ends on a date, and the version it replaced is live again.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        LIVE = "live", _("Live")
        REPLACED = "replaced", _("Replaced")
        ENDED = "ended", _("Ended")
        REJECTED = "rejected", _("Rejected")

    number = bounded(models.PositiveIntegerField(_("version number"), unique=True), minimum=1)
    name = models.CharField(_("name"), max_length=100, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status, default=Status.DRAFT, db_index=True
    )
    copied_from = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("copied from"),
    )
    replaces = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("replaces"),
        help_text=_("The version that was live when this one went live; live again at its end."),
    )
    effective_from = models.DateTimeField(_("effective from"), null=True, blank=True)
    ends_on = models.DateField(
        _("ends on"),
        null=True,
        blank=True,
        help_text=_("A seasonal version: from this day the version it replaced is live again."),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("drafted by"),
    )
    created_at = models.DateTimeField(_("drafted at"), default=timezone.now)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("published by"),
    )
    published_at = models.DateTimeField(_("live since"), null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        verbose_name = _("programme version")
        verbose_name_plural = _("programme versions")
        permissions = [("publish_programmeversion", _("Can publish a programme version"))]
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=Q(status="live"),
                name="one_live_programme_version",
                violation_error_message=_("Only one programme version is live."),
            ),
        ]

    def __str__(self) -> str:
        label = _("Version %(number)s") % {"number": self.number}
        return f"{label} {self.name}".strip()

    @property
    def editable(self) -> bool:
        return self.status == self.Status.DRAFT


class VersionGroupRule(models.Model):
    """One group's rule inside a programme version."""

    version = models.ForeignKey(
        ProgrammeVersion,
        on_delete=models.CASCADE,
        related_name="group_rules",
        verbose_name=_("programme version"),
    )
    group = models.ForeignKey(
        VipGroup, on_delete=models.CASCADE, related_name="+", verbose_name=_("VIP group")
    )
    entry_amount = bounded(
        models.PositiveBigIntegerField(_("qualifying amount"), null=True, blank=True)
    )
    entry_requires = models.CharField(
        _("entry condition"), max_length=10, choices=EntryRequires, default=EntryRequires.EITHER
    )
    metric = models.CharField(_("qualifying metric"), max_length=20, choices=Metric)
    window = models.CharField(_("window"), max_length=20, choices=Window)
    review_period_months = bounded(
        models.PositiveSmallIntegerField(_("review period (months)"), default=12), minimum=1
    )

    class Meta:
        ordering = ["group__priority", "group_id"]
        verbose_name = _("group rule")
        verbose_name_plural = _("group rules")
        constraints = [
            models.UniqueConstraint(fields=["version", "group"], name="version_group_rule_once"),
            models.CheckConstraint(
                condition=Q(review_period_months__gte=1),
                name="version_group_review_at_least_a_month",
                violation_error_message=_("The review period is at least one month."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} · {self.group}"

    @property
    def name(self) -> str:  # how the page's error summary names the row
        return str(self.group)


class VersionTierThreshold(models.Model):
    """One tier's thresholds inside a programme version."""

    version = models.ForeignKey(
        ProgrammeVersion,
        on_delete=models.CASCADE,
        related_name="thresholds",
        verbose_name=_("programme version"),
    )
    tier = models.ForeignKey(
        Tier, on_delete=models.CASCADE, related_name="+", verbose_name=_("tier")
    )
    upgrade_threshold = bounded(models.PositiveBigIntegerField(_("upgrade threshold")))
    retention_threshold = bounded(models.PositiveBigIntegerField(_("retention threshold")))

    class Meta:
        ordering = ["tier__group__priority", "tier__rank"]
        verbose_name = _("tier threshold")
        verbose_name_plural = _("tier thresholds")
        constraints = [
            models.UniqueConstraint(fields=["version", "tier"], name="version_tier_once"),
            models.CheckConstraint(
                condition=Q(retention_threshold__lte=F("upgrade_threshold")),
                name="version_retention_not_above_upgrade",
                violation_error_message=_(
                    "The retention threshold cannot be above the upgrade threshold."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} · {self.tier}"

    @property
    def name(self) -> str:  # how the page's error summary names the row
        return str(self.tier)

    def clean(self) -> None:
        up, keep = self.upgrade_threshold, self.retention_threshold
        if up is not None and keep is not None and keep > up:
            raise ValidationError(
                {
                    "retention_threshold": _(
                        "The retention threshold cannot be above the upgrade threshold."
                    )
                }
            )


class VersionSwitch(models.Model):
    """A version going live (start) or ending (end): one row each, so a switch runs once."""

    class Kind(models.TextChoices):
        START = "start", _("Goes live")
        END = "end", _("Ends")

    version = models.ForeignKey(
        ProgrammeVersion,
        on_delete=models.PROTECT,
        related_name="switches",
        verbose_name=_("programme version"),
    )
    kind = models.CharField(_("kind"), max_length=5, choices=Kind)
    done_at = models.DateTimeField(_("done at"))

    class Meta:
        ordering = ["-done_at"]
        verbose_name = _("version switch")
        verbose_name_plural = _("version switches")
        constraints = [
            models.UniqueConstraint(fields=["version", "kind"], name="version_switch_once"),
        ]

    def __str__(self) -> str:
        return f"{self.version} · {self.get_kind_display()}"


class AdjustRule(models.Model):
    """An auto-adjust rule (seed 000): when a group's measure crosses ``trigger_percent``,
    propose moving its thresholds by ``step_percent``, never beyond ``bound_percent`` of
    the base version's; with ``auto_apply`` a proposal within bounds publishes itself."""

    class Measure(models.TextChoices):
        VIP_SHARE = "vip_share", _("VIP share (members above the base tier)")
        UPGRADE_RATE = "upgrade_rate", _("Upgrade rate")
        RENEWAL_RATE = "renewal_rate", _("Renewal rate of paid plans")

    class Compare(models.TextChoices):
        ABOVE = "above", _("above")
        BELOW = "below", _("below")

    class Frequency(models.TextChoices):
        MONTHLY = "monthly", _("Every month")
        QUARTERLY = "quarterly", _("Every quarter")

    name = models.CharField(_("name"), max_length=100, unique=True)
    measure = models.CharField(_("measure"), max_length=20, choices=Measure)
    compare = models.CharField(_("when the measure is"), max_length=5, choices=Compare)
    trigger_percent = models.DecimalField(
        _("trigger (percent)"),
        max_digits=5,
        decimal_places=1,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
    )
    step_percent = models.DecimalField(
        _("step (percent)"),
        max_digits=4,
        decimal_places=1,
        default=0,
        validators=[MinValueValidator(-50), MaxValueValidator(50)],
        help_text=_("+10 raises every threshold by 10 percent; −10 lowers them."),
    )
    frequency = models.CharField(_("frequency"), max_length=10, choices=Frequency)
    bound_percent = models.DecimalField(
        _("bound (± percent of the base version)"),
        max_digits=4,
        decimal_places=1,
        default=30,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
    )
    base_version = models.ForeignKey(
        ProgrammeVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("base version"),
        help_text=_("Blank: the version live when the rule first proposes."),
    )
    notify_only = models.BooleanField(
        _("only notify"), default=False, help_text=_("Flag the measure; propose no change.")
    )
    auto_apply = models.BooleanField(_("apply by itself within bounds"), default=False)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("auto-adjust rule")
        verbose_name_plural = _("auto-adjust rules")

    def __str__(self) -> str:
        return self.name


class AdjustProposal(models.Model):
    """What one rule found in one period: the measures, and the draft it proposes."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", _("Awaiting approval")
        NOTIFIED = "notified", _("Flagged for review")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        APPLIED = "applied", _("Applied by itself")

    rule = models.ForeignKey(
        AdjustRule, on_delete=models.PROTECT, related_name="proposals", verbose_name=_("rule")
    )
    period = models.CharField(_("period"), max_length=7, help_text=_("YYYY-MM or YYYY-Qn."))
    measures = models.JSONField(_("measures"), default=dict)
    draft = models.ForeignKey(
        ProgrammeVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("proposed version"),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status)
    note = models.TextField(_("note"), blank=True)
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("auto-adjust proposal")
        verbose_name_plural = _("auto-adjust proposals")
        constraints = [
            models.UniqueConstraint(fields=["rule", "period"], name="one_proposal_per_rule_period")
        ]

    def __str__(self) -> str:
        return f"{self.rule} · {self.period}"


class MemberSummary(models.Model):
    """What the member's tier page shows, so the page is one read (會員摘要).

    Written only by ``membership.services.summary``, in the same transaction as every
    change that alters it (orders, refunds, evaluations, tier changes, the set-based
    recompute). ``value`` and ``review_value`` are for the member's group's metric and
    window at the time of writing: they hold until ``valid_until`` (the next local
    midnight, when a window moves, or earlier when a tier grant starts or ends), after
    which the page computes afresh instead of reading them. ``manage.py
    check_member_summaries`` proves every row against a fresh computation.
    """

    member = models.OneToOneField(
        Member, on_delete=models.CASCADE, primary_key=True, related_name="summary"
    )
    metric = models.CharField(_("qualifying metric"), max_length=20, blank=True)
    metric_window = models.CharField(_("window"), max_length=20, blank=True)
    value = bounded(models.BigIntegerField(_("qualifying value"), default=0))
    review_value = bounded(models.BigIntegerField(_("value at the next review"), default=0))
    # The review date ``review_value`` was computed for: another date on the member's
    # (or tier holder's) row means the row is not read.
    review_on = models.DateField(_("next review"), null=True, blank=True)
    recent_orders = models.JSONField(_("recent orders"), default=list, blank=True)
    recent_history = models.JSONField(_("recent tier history"), default=list, blank=True)
    computed_at = models.DateTimeField(_("computed at"))
    valid_until = models.DateTimeField(_("valid until"), db_index=True)

    class Meta:
        verbose_name = _("member summary")
        verbose_name_plural = _("member summaries")

    def __str__(self) -> str:
        return f"{self.member_id}"


class ProgrammeStamp(models.Model):
    """One row whose ``stamp`` the database itself changes on every write to the live
    programme's tables (VIP groups, their entry tags, tiers, a tag's name or deletion).

    Database triggers write it (migration 0023), so no writer can forget it: admin
    saves, ``QuerySet.update``, raw SQL and imports all change it. PostgreSQL draws it
    from a sequence and SQLite at random, so a value is never used twice, not even by a
    rolled-back change. ``services.rules.load_programme`` keeps the programme per process
    under the stamp it was read with, and reads it again as soon as the stamp differs.
    """

    stamp = bounded(models.BigIntegerField(_("programme stamp")))

    class Meta:
        verbose_name = _("programme stamp")
        verbose_name_plural = _("programme stamps")

    def __str__(self) -> str:
        return str(self.stamp)
