"""Segments: each member's RFM scores, lifecycle stage and behaviour, recomputed nightly.

The job (services.py) writes ``MemberSegment`` set-based; the segments become system
tags on members through membership's services, which keep when a member entered and
left each one.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from membership.bounds import bounded


class Lifecycle(models.TextChoices):
    NEW = "new", _("New")
    GROWING = "growing", _("Growing")
    MATURE = "mature", _("Mature")
    DECLINING = "declining", _("Declining")
    CHURNED = "churned", _("Churned")


class RfmCell(models.TextChoices):
    """The eight cells of R, F and M each high (score 3–5) or low (1–2)."""

    IMPORTANT_VALUE = "important_value", _("Important value")  # R high, F high, M high
    IMPORTANT_WIN_BACK = "important_win_back", _("Important win-back")  # R low, F high, M high
    IMPORTANT_DEVELOP = "important_develop", _("Important to develop")  # R high, F low, M high
    IMPORTANT_RETAIN = "important_retain", _("Important to retain")  # R low, F low, M high
    POTENTIAL = "potential", _("Potential")  # R high, F high, M low
    NEWCOMER = "newcomer", _("Newcomer")  # R high, F low, M low
    MAINTAIN = "maintain", _("Maintain")  # R low, F high, M low
    LOST = "lost", _("Lost")  # R low, F low, M low


class Behaviour(models.TextChoices):
    BIG_SPENDER = "big_spender", _("Shopping enthusiast")
    PROMOTION_HUNTER = "promotion_hunter", _("Promotion hunter")
    LOYALIST = "loyalist", _("Brand loyalist")


class SegmentSettings(models.Model):
    """The merchant's boundaries for the segments; one row, edited in the admin."""

    rfm_months = bounded(
        models.PositiveSmallIntegerField(
            _("RFM period (months)"),
            default=12,
            validators=[MinValueValidator(1), MaxValueValidator(60)],
            help_text=_("Members who bought in this period are scored 1–5 by quintile."),
        )
    )
    high_score = bounded(
        models.PositiveSmallIntegerField(
            _("high score from"),
            default=3,
            validators=[MinValueValidator(2), MaxValueValidator(5)],
            help_text=_("A score at or above this is 'high' when naming the RFM cell."),
        )
    )
    new_days = bounded(
        models.PositiveSmallIntegerField(
            _("new: first order within (days)"),
            default=30,
            validators=[MinValueValidator(1), MaxValueValidator(3650)],
        )
    )
    active_days = bounded(
        models.PositiveSmallIntegerField(
            _("active: last order within (days)"),
            default=90,
            validators=[MinValueValidator(1), MaxValueValidator(3650)],
        )
    )
    churn_days = bounded(
        models.PositiveSmallIntegerField(
            _("churned: no order for (days)"),
            default=365,
            validators=[MinValueValidator(1), MaxValueValidator(3650)],
        )
    )
    mature_orders = bounded(
        models.PositiveSmallIntegerField(
            _("mature: orders at least"),
            default=5,
            validators=[MinValueValidator(2), MaxValueValidator(1000)],
        )
    )
    big_spender_score = bounded(
        models.PositiveSmallIntegerField(
            _("shopping enthusiast: F and M scores at least"),
            default=4,
            validators=[MinValueValidator(1), MaxValueValidator(5)],
        )
    )
    promotion_share = bounded(
        models.PositiveSmallIntegerField(
            _("promotion hunter: share of orders in promotions at least (%)"),
            default=50,
            validators=[MinValueValidator(1), MaxValueValidator(100)],
        )
    )
    promotion_min_orders = bounded(
        models.PositiveSmallIntegerField(
            _("promotion hunter: orders in the period at least"),
            default=2,
            validators=[MinValueValidator(1), MaxValueValidator(1000)],
        )
    )
    loyal_quarters = bounded(
        models.PositiveSmallIntegerField(
            _("brand loyalist: bought in at least this many of the last 4 quarters"),
            default=3,
            validators=[MinValueValidator(1), MaxValueValidator(4)],
        )
    )
    loyal_days = bounded(
        models.PositiveSmallIntegerField(
            _("brand loyalist: first order at least (days) ago"),
            default=365,
            validators=[MinValueValidator(1), MaxValueValidator(3650)],
        )
    )

    # Every system tag matched its segment row when the run of this moment finished; the
    # next run re-tags only members whose row changed after it (a run that stopped half-way
    # leaves the watermark where it was, so its members are taken up again).
    tags_synced_at = models.DateTimeField(_("system tags in step as of"), null=True, editable=False)

    class Meta:
        verbose_name = _("segment settings")
        verbose_name_plural = _("segment settings")
        constraints = [
            models.CheckConstraint(
                condition=Q(new_days__lt=models.F("active_days"))
                & Q(active_days__lt=models.F("churn_days")),
                name="segment_days_rise",
                violation_error_message=_("The days must rise: new < active < churned."),
            ),
        ]

    def __str__(self) -> str:
        return str(self._meta.verbose_name)


class MemberSegment(models.Model):
    """One member's figures and segments as of the last nightly run."""

    member = models.OneToOneField(
        "membership.Member",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="segment",
        verbose_name=_("member"),
    )
    first_order_at = models.DateTimeField(_("first order"), null=True)
    last_order_at = models.DateTimeField(_("last order"), null=True)
    orders_total = bounded(models.PositiveIntegerField(_("orders (all time)"), default=0))
    orders_paid = bounded(models.PositiveIntegerField(_("paid orders (all time)"), default=0))
    orders_returned = bounded(
        models.PositiveIntegerField(_("orders refunded or cancelled"), default=0)
    )
    period_orders = bounded(models.PositiveIntegerField(_("orders in the RFM period"), default=0))
    period_spend = bounded(
        models.BigIntegerField(_("net spend in the RFM period (NT$)"), default=0)
    )
    promotion_orders = bounded(
        models.PositiveIntegerField(_("orders in promotion windows"), default=0)
    )
    quarters_active = bounded(
        models.PositiveSmallIntegerField(_("active quarters (of 4)"), default=0)
    )
    recency = bounded(models.PositiveSmallIntegerField(_("R"), null=True))
    frequency = bounded(models.PositiveSmallIntegerField(_("F"), null=True))
    monetary = bounded(models.PositiveSmallIntegerField(_("M"), null=True))
    rfm_cell = models.CharField(_("RFM cell"), max_length=20, choices=RfmCell, blank=True)
    lifecycle = models.CharField(_("lifecycle stage"), max_length=10, choices=Lifecycle, blank=True)
    big_spender = models.BooleanField(_("shopping enthusiast"), default=False)
    promotion_hunter = models.BooleanField(_("promotion hunter"), default=False)
    loyalist = models.BooleanField(_("brand loyalist"), default=False)
    # When the job last found something different for this member (unchanged rows are
    # not rewritten).
    changed_at = models.DateTimeField(_("changed at"))

    class Meta:
        verbose_name = _("member segment")
        verbose_name_plural = _("member segments")
        indexes = [
            models.Index(fields=["rfm_cell"], name="segment_cell_idx"),
            models.Index(fields=["lifecycle"], name="segment_lifecycle_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}"

    @property
    def return_rate(self):
        """Share of all orders refunded (in part or whole) or cancelled, as a Decimal 0–1."""
        from decimal import Decimal

        if not self.orders_total:
            return Decimal(0)
        return Decimal(self.orders_returned) / Decimal(self.orders_total)

    @property
    def promotion_share(self):
        from decimal import Decimal

        if not self.period_orders:
            return Decimal(0)
        return Decimal(self.promotion_orders) / Decimal(self.period_orders)


class Audience(models.Model):
    """A saved member filter (受眾): its query string, so it always means today's members."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.CharField(_("description"), max_length=300, blank=True)
    query = models.TextField(_("filters"), blank=True, help_text=_("The filter's query string."))
    created_by = models.ForeignKey(
        "auth.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("audience")
        verbose_name_plural = _("audiences")

    def __str__(self) -> str:
        return self.name


class TierSnapshot(models.Model):
    """One day's figures for the members of one tier (or of no tier) in one VIP group.

    Written by the nightly KPI job (and backfilled for the last twelve month-ends from
    tier history on its first run); the dashboard reads only these rows.
    """

    day = models.DateField(_("day"))
    group = models.ForeignKey(
        "membership.VipGroup",
        on_delete=models.CASCADE,
        null=True,
        related_name="+",
        verbose_name=_("VIP group"),
    )
    tier = models.ForeignKey(
        "membership.Tier",
        on_delete=models.CASCADE,
        null=True,
        related_name="+",
        verbose_name=_("tier"),
    )
    members = bounded(models.PositiveIntegerField(_("members")))
    buyers = bounded(models.PositiveIntegerField(_("bought in the last 12 months")))
    repeat_buyers = bounded(models.PositiveIntegerField(_("bought twice or more in 12 months")))
    active = bounded(models.PositiveIntegerField(_("bought in the last 90 days")))
    spend = bounded(models.BigIntegerField(_("net spend in the last 12 months (NT$)")))
    lifetime_spend = bounded(models.BigIntegerField(_("net spend, all time (NT$)")))
    points = bounded(models.BigIntegerField(_("points outstanding")))
    upgrades = bounded(models.PositiveIntegerField(_("upgrades into this tier, month to date")))
    downgrades = bounded(models.PositiveIntegerField(_("downgrades into this tier, month to date")))

    class Meta:
        ordering = ["day", "group", "tier"]
        verbose_name = _("tier snapshot")
        verbose_name_plural = _("tier snapshots")
        indexes = [models.Index(fields=["day"], name="tier_snapshot_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.group_id}/{self.tier_id}"


class SegmentSnapshot(models.Model):
    """One day's segment counts: the RFM grid (R × F) and the lifecycle funnel."""

    day = models.DateField(_("day"), unique=True)
    rfm_grid = models.JSONField(_("RFM grid"), default=dict)
    lifecycle = models.JSONField(_("lifecycle stages"), default=dict)

    class Meta:
        ordering = ["day"]
        verbose_name = _("segment snapshot")
        verbose_name_plural = _("segment snapshots")

    def __str__(self) -> str:
        return str(self.day)
