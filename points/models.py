"""The points ledger: append-only entries, earning lots consumed oldest first.

Invariants (checked by `manage.py check_points` and the property-based test):
- an account's balance = the sum of its entries = the sum of its lots' remaining points;
- no balance and no lot's remaining ever goes below zero;
- an entry is never changed or deleted; a correction is a reversing entry.
"""

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from membership.bounds import bounded
from membership.models import Member


class Account(models.Model):
    member = models.OneToOneField(Member, on_delete=models.PROTECT, related_name="points_account")
    # A cache of SUM(entries.points), moved only in the same transaction as an entry.
    balance = bounded(models.BigIntegerField(_("balance"), default=0))
    # Points reversed after they were spent: settled from future earnings, never negative.
    shortfall = bounded(models.BigIntegerField(_("shortfall"), default=0))

    class Meta:
        verbose_name = _("points account")
        verbose_name_plural = _("points accounts")
        permissions = [("adjust_points", _("Can adjust points by hand"))]
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="points_balance_not_negative"),
            models.CheckConstraint(
                condition=Q(shortfall__gte=0), name="points_shortfall_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member} · {self.balance}"


# What each ledger source means to an operator (the codes the services post with), for
# the admin's list and filter and the data download alike.
SOURCE_LABELS = {
    "order": _("order"),
    "refund": _("refund"),
    "operator": _("manual adjustment"),
    "birthday": _("birthday bonus"),
    "reward": _("reward"),
    "action": _("activity"),
    "referral": _("referral"),
    "referral-refund": _("referral reversed"),
    "partner": _("partner brand"),
    "import": _("import"),
    "expiry": _("expiry"),
}


class Entry(models.Model):
    class Kind(models.TextChoices):
        EARN = "earn", _("Earned")
        REDEEM = "redeem", _("Redeemed")
        EXPIRE = "expire", _("Expired")
        ADJUST = "adjust", _("Adjusted")
        REVERSE = "reverse", _("Reversed")
        PARTNER_OUT = "partner_out", _("Sent to a partner")
        PARTNER_IN = "partner_in", _("Received from a partner")

    # Served by the (account, created_at) index below; a second index would only slow posting.
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind)
    points = bounded(
        models.BigIntegerField(_("points"), help_text=_("Positive adds, negative takes."))
    )
    source = models.CharField(_("source"), max_length=30)
    source_ref = models.CharField(_("source reference"), max_length=100)
    idempotency_key = models.CharField(_("idempotency key"), max_length=150, unique=True)
    shortfall = bounded(
        models.BigIntegerField(
            _("shortfall"),
            default=0,
            help_text=_(
                "Points of this reversal already spent: owed, settled from future earnings."
            ),
        )
    )
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("time"), db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        indexes = [models.Index(fields=["account", "created_at"], name="points_entry_account_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.points:+}"


class Lot(models.Model):
    """The points of one earning, spendable from ``available_at``, gone at ``expires_at``."""

    entry = models.OneToOneField(Entry, on_delete=models.PROTECT, related_name="lot")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lots")
    points = bounded(models.BigIntegerField())
    remaining = bounded(models.BigIntegerField())
    available_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    reminded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["expires_at", "id"]
        verbose_name = _("lot")
        verbose_name_plural = _("lots")
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__gte=0, remaining__lte=F("points")),
                name="points_lot_remaining_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.remaining}/{self.points} until {self.expires_at:%Y-%m-%d}"


class Reward(models.Model):
    """Something points buy: a gift from stock, or months of a tier through a tier grant."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    points_cost = bounded(models.PositiveIntegerField(_("points")))
    stock = bounded(
        models.PositiveIntegerField(
            _("stock"), null=True, blank=True, help_text=_("Blank: unlimited.")
        )
    )
    tier = models.ForeignKey(
        "membership.Tier",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        verbose_name=_("tier granted"),
    )
    months = bounded(models.PositiveSmallIntegerField(_("months of the tier"), default=1))
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["points_cost"]
        verbose_name = _("reward")
        verbose_name_plural = _("rewards")

    def __str__(self) -> str:
        return self.name


class Action(models.Model):
    """A non-purchase action (check-in, review, share) worth points, within the daily cap."""

    code = models.SlugField(_("code"), unique=True)
    name = models.CharField(_("name"), max_length=100)
    points = bounded(models.PositiveIntegerField(_("points")))

    class Meta:
        verbose_name = _("action")
        verbose_name_plural = _("actions")

    def __str__(self) -> str:
        return self.name


class Referral(models.Model):
    referrer = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="referrals_made")
    friend = models.OneToOneField(Member, on_delete=models.PROTECT, related_name="referred_by")
    rewarded_at = models.DateTimeField(_("rewarded at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")
        constraints = [
            models.CheckConstraint(condition=~Q(referrer=F("friend")), name="no_self_referral"),
        ]

    def __str__(self) -> str:
        return f"{self.referrer} → {self.friend}"


STACKING_RULE = _(
    "Points for an order = whole NT$100s × the tier's points per NT$100 × the tier coefficient × "
    "the highest multiplier among the promotions running when the order was placed (promotions do "
    "not stack with each other), rounded down once at the end. In a member's birthday month, the "
    "largest order of the month (after refunds) earns the birthday multiplier on top of what it "
    "earned: (multiplier − 1) × its points, rounded down, never more than the birthday cap, added "
    "after the month ends."
)


class TierCoefficient(models.Model):
    """Extra weight on a tier's earning (鑽石 1.5×)."""

    tier = models.OneToOneField(
        "membership.Tier", on_delete=models.CASCADE, related_name="points_coefficient"
    )
    coefficient = models.DecimalField(_("coefficient"), max_digits=4, decimal_places=2, default=1)

    class Meta:
        verbose_name = _("tier coefficient")
        verbose_name_plural = _("tier coefficients")
        constraints = [
            models.CheckConstraint(condition=Q(coefficient__gt=0), name="tier_coefficient_positive")
        ]

    def __str__(self) -> str:
        return f"{self.tier} ×{self.coefficient}"


class Promotion(models.Model):
    """A window in which orders earn a multiple of their points (holiday 3×)."""

    name = models.CharField(_("name"), max_length=100)
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    multiplier = models.DecimalField(_("multiplier"), max_digits=4, decimal_places=2)

    class Meta:
        ordering = ["-starts_at"]
        verbose_name = _("promotion")
        verbose_name_plural = _("promotions")
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="promotion_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(multiplier__gte=1), name="promotion_multiplier_at_least_one"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ×{self.multiplier}"


class BirthdayRule(models.Model):
    """The birthday-month bonus on the largest order of the month (Carrefour: 30×, capped)."""

    multiplier = models.DecimalField(
        _("multiplier"),
        max_digits=5,
        decimal_places=2,
        help_text=_("The largest order of the birthday month earns its points × this in all."),
    )
    cap = bounded(
        models.PositiveIntegerField(_("cap (points)"), help_text=_("Most bonus points a year."))
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("birthday rule")
        verbose_name_plural = _("birthday rule")
        constraints = [
            models.CheckConstraint(
                condition=Q(multiplier__gte=1), name="birthday_multiplier_at_least_one"
            ),
        ]

    def __str__(self) -> str:
        return f"×{self.multiplier} ≤ {self.cap}"


class Partner(models.Model):
    """A partner brand whose points a member can exchange ours for, and back."""

    code = models.SlugField(_("code"), unique=True)
    name = models.CharField(_("name"), max_length=100)
    rate = models.DecimalField(
        _("exchange rate"),
        max_digits=6,
        decimal_places=3,
        help_text=_("Partner points for one of ours (1:0.8 → 0.8)."),
    )
    monthly_cap = bounded(
        models.PositiveIntegerField(
            _("monthly cap (our points)"),
            null=True,
            blank=True,
            help_text=_("Most of our points one member may exchange with this partner in a month."),
        )
    )
    min_tier = models.ForeignKey(
        "membership.Tier",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("minimum tier"),
        help_text=_("Blank: every member. Else this tier or a higher one of its group."),
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("partner brand")
        verbose_name_plural = _("partner brands")
        constraints = [
            models.CheckConstraint(condition=Q(rate__gt=0), name="partner_rate_positive")
        ]

    def __str__(self) -> str:
        return self.name


class PartnerBonus(models.Model):
    """Extra points for VIP members on an exchange with a partner, by tier."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="bonuses")
    tier = models.ForeignKey(
        "membership.Tier", on_delete=models.CASCADE, related_name="+", verbose_name=_("tier")
    )
    percent = bounded(models.PositiveSmallIntegerField(_("VIP bonus (%)")))

    class Meta:
        verbose_name = _("VIP bonus")
        verbose_name_plural = _("VIP bonuses")
        constraints = [
            models.UniqueConstraint(fields=["partner", "tier"], name="partner_bonus_unique_tier")
        ]

    def __str__(self) -> str:
        return f"{self.partner} · {self.tier} +{self.percent}%"


class PartnerTransfer(models.Model):
    """The partner's side of an exchange: what they credit or debit, for reconciliation."""

    entry = models.OneToOneField(Entry, on_delete=models.PROTECT, related_name="transfer")
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="transfers")
    partner_points = bounded(models.PositiveBigIntegerField(_("partner points")))
    bonus_percent = bounded(models.PositiveSmallIntegerField(_("VIP bonus (%)"), default=0))
    created_at = models.DateTimeField(_("time"))

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("partner exchange")
        verbose_name_plural = _("partner exchanges")

    def __str__(self) -> str:
        return f"{self.partner} {self.partner_points}"
