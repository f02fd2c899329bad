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

    api_key = models.ForeignKey(
        ApiKey, on_delete=models.CASCADE, related_name="+", verbose_name=_("API key")
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
