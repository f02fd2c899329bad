"""Paid VIP plans, subscriptions, their history and every charge attempt."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from membership.bounds import bounded
from membership.models import Member, Tier


class Plan(models.Model):
    class Interval(models.TextChoices):
        MONTH = "month", _("Monthly")
        YEAR = "year", _("Yearly")

    name = models.CharField(_("name"), max_length=50, unique=True)
    price = bounded(models.PositiveIntegerField(_("price (NT$ per period)")))
    interval = models.CharField(
        _("billing period"), max_length=5, choices=Interval, default=Interval.MONTH
    )
    tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        verbose_name=_("tier granted"),
        help_text=_("While subscribed, the member's tier is at least this one."),
    )
    perks = models.CharField(_("plan benefits"), max_length=200, blank=True)
    is_free = models.BooleanField(
        _("free plan"), default=False, help_text=_("Where members go when a paid plan ends.")
    )
    position = bounded(models.PositiveIntegerField(_("position"), default=0))

    class Meta:
        ordering = ["position", "price"]
        verbose_name = _("plan")
        verbose_name_plural = _("plans")
        constraints = [
            models.UniqueConstraint(
                fields=["is_free"], condition=Q(is_free=True), name="one_free_plan"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def months(self) -> int:
        return 12 if self.interval == self.Interval.YEAR else 1


class Subscription(models.Model):
    """One member's paid plan. State moves only through subscriptions.services."""

    class State(models.TextChoices):
        # The first payment's answer was lost: asked again by the sweeper, no tier yet.
        PENDING = "pending", _("Awaiting payment confirmation")
        ACTIVE = "active", _("Active")
        PAST_DUE = "past_due", _("Past due (grace period)")
        CANCELLING = "cancelling", _("Cancelled at period end")
        EXPIRED = "expired", _("Expired")

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(
        Plan, on_delete=models.PROTECT, related_name="+", verbose_name=_("plan")
    )
    next_plan = models.ForeignKey(
        Plan,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("plan from next period"),
    )
    state = models.CharField(_("state"), max_length=12, choices=State, default=State.ACTIVE)
    card_token = models.CharField(_("card token"), max_length=100)
    period_start = models.DateTimeField(_("period start"))
    period_end = models.DateTimeField(_("period end"), db_index=True)
    grace_until = models.DateTimeField(_("grace until"), null=True, blank=True)
    next_attempt_at = models.DateTimeField(_("next charge attempt"), null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    reminded_for = models.DateTimeField(_("reminded for period ending"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        permissions = [("manage_subscription", _("Can cancel, resume or retry subscriptions"))]
        constraints = [
            # One live subscription per member; expired ones stay as history.
            models.UniqueConstraint(
                fields=["member"], condition=~Q(state="expired"), name="one_live_subscription"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member} · {self.plan}"


class SubscriptionEvent(models.Model):
    """Every transition of a subscription: append-only."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(_("event"), max_length=30)
    from_state = models.CharField(_("from"), max_length=12, blank=True)
    to_state = models.CharField(_("to"), max_length=12)
    actor = models.ForeignKey(
        "auth.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("time"))

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("subscription event")
        verbose_name_plural = _("subscription events")

    def __str__(self) -> str:
        return f"{self.kind}: {self.from_state} → {self.to_state}"


class ChargeAttempt(models.Model):
    """One try at charging one period. Its key is also the gateway's idempotency key."""

    class Result(models.TextChoices):
        PENDING = "pending", _("Pending (no answer yet)")
        SUCCEEDED = "succeeded", _("Succeeded")
        DECLINED = "declined", _("Declined")

    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="attempts"
    )
    period_start = models.DateTimeField(_("period charged"))
    attempt = bounded(models.PositiveSmallIntegerField(_("attempt")))
    amount = bounded(models.PositiveIntegerField(_("amount (NT$)")))
    idempotency_key = models.CharField(_("idempotency key"), max_length=100, unique=True)
    result = models.CharField(_("result"), max_length=10, choices=Result, default=Result.PENDING)
    gateway_reference = models.CharField(_("gateway reference"), max_length=100, blank=True)
    message = models.CharField(_("message"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"))
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("charge attempt")
        verbose_name_plural = _("charge attempts")
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "period_start", "attempt"], name="one_attempt_per_number"
            ),
            # The heart of "never charge a period twice".
            models.UniqueConstraint(
                fields=["subscription", "period_start"],
                condition=Q(result="succeeded"),
                name="one_success_per_period",
            ),
        ]

    def __str__(self) -> str:
        return self.idempotency_key


class SandboxCharge(models.Model):
    """The sandbox gateway's own book, so its idempotency holds across workers."""

    idempotency_key = models.CharField(max_length=100, unique=True)
    token = models.CharField(max_length=100)
    amount = bounded(models.PositiveIntegerField())
    succeeded = models.BooleanField()
    reference = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("sandbox charge")
        verbose_name_plural = _("sandbox charges")

    def __str__(self) -> str:
        return self.reference
