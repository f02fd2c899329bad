"""API keys for the shop's integrations, and the stored answers behind idempotency keys."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from membership.bounds import bounded


class Scope(models.TextChoices):
    ORDERS_WRITE = "orders:write", _("Send orders, refunds and cancellations")
    MEMBERS_READ = "members:read", _("Read members and the tier calculator")
    MEMBERS_WRITE = "members:write", _("Create and update members and their tags")
    POINTS_READ = "points:read", _("Read points balances and ledger entries")
    POINTS_WRITE = "points:write", _("Post points earnings and adjustments")


class ApiKey(models.Model):
    """One integration's key. Only a hash of the secret is kept; the key is shown once."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    # The key's public first part: finds the row without scanning hashes, and names the key
    # in logs and in the admin without revealing the secret.
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(_("hashed secret"), max_length=64, editable=False)
    scopes = models.JSONField(_("scopes"), default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """A POST's idempotency key: claimed before the work, then its first answer, kept 30 days.

    ``completed_at`` empty means the first request with this key is still running.
    """

    # Served by the unique (api_key, key) index; a second index would only slow each claim.
    api_key = models.ForeignKey(
        ApiKey,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("API key"),
        db_index=False,
    )
    key = models.CharField(_("idempotency key"), max_length=255)
    fingerprint = models.CharField(
        _("request fingerprint"),
        max_length=64,
        help_text=_("SHA-256 of the method, the path and the body."),
    )
    status = bounded(models.PositiveSmallIntegerField(_("status"), null=True, blank=True))
    response = models.JSONField(_("response"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), db_index=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_key_unique"),
            models.CheckConstraint(
                condition=Q(completed_at__isnull=True) | Q(status__isnull=False),
                name="idempotency_completed_has_status",
            ),
        ]

    def __str__(self) -> str:
        return self.key


class WebhookEvent(models.TextChoices):
    """What the programme tells the shop about, as ``type`` in each webhook's body."""

    TIER_CHANGED = "tier.changed", _("Tier changed")
    GROUP_CHANGED = "group.changed", _("VIP group changed")
    POINTS_POSTED = "points.posted", _("Points posted")
    POINTS_EXPIRING = "points.expiring", _("Points expiring")
    NUDGE_CREATED = "nudge.created", _("Nudge created")
    SUBSCRIPTION_RENEWED = "subscription.renewed", _("Subscription renewed")
    SUBSCRIPTION_FAILED = "subscription.failed", _("Subscription payment failed")


class WebhookEndpoint(models.Model):
    """A URL of the shop's that is told about the chosen events, signed with its secret.

    The secret signs every body (HMAC-SHA256), so it is kept as it is, not hashed; it is
    shown once, when the endpoint is made. An endpoint that fails for a day is turned off
    (``active``), with the time and the reason.
    """

    url = models.URLField(_("URL"), max_length=500)
    description = models.CharField(_("description"), max_length=200, blank=True)
    events = models.JSONField(_("events"), default=list)
    secret = models.CharField(_("signing secret"), max_length=100, editable=False)
    active = models.BooleanField(_("turned on"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # The first failure since the last success; a day of it turns the endpoint off.
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)
    disabled_at = models.DateTimeField(_("turned off at"), null=True, blank=True)
    disabled_reason = models.TextField(_("why it was turned off"), blank=True)

    class Meta:
        ordering = ["url"]
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.description or self.url


class WebhookDelivery(models.Model):
    """One event owed to one endpoint: written with the change, sent and retried by Celery.

    ``next_attempt_at`` is when a worker may try it (the sender also pushes it ahead while
    a try is under way, so a worker that dies leaves the row due again); retries back off
    exponentially until ``retry_until`` (a day), then the delivery has failed.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        SUCCEEDED = "succeeded", _("delivered")
        FAILED = "failed", _("failed")

    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("webhook endpoint"),
    )
    event = models.CharField(_("event"), max_length=40, choices=WebhookEvent)
    # The same for every endpoint told of one event: a receiver drops one it has seen.
    event_id = models.CharField(_("event id"), max_length=100)
    payload = models.JSONField(_("payload"), default=dict)
    status = models.CharField(_("status"), max_length=10, choices=Status, default=Status.PENDING)
    attempts = bounded(models.PositiveIntegerField(_("attempts"), default=0))
    created_at = models.DateTimeField(_("created at"), db_index=True)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    retry_until = models.DateTimeField(_("retried until"))
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    response_code = bounded(
        models.PositiveSmallIntegerField(_("response code"), null=True, blank=True)
    )
    last_error = models.TextField(_("last error"), blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], name="webhook_event_once_per_endpoint"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="webhook_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} → {self.endpoint} ({self.event_id})"
