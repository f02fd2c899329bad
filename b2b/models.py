"""Enterprises: a master account and sub-accounts that share one tier."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from membership.models import Member

from .validators import validate_business_id


class Enterprise(models.Model):
    name = models.CharField(_("company name"), max_length=200)
    business_id = models.CharField(
        _("business ID (統一編號)"), max_length=8, unique=True, validators=[validate_business_id]
    )
    master = models.OneToOneField(
        Member,
        on_delete=models.PROTECT,
        related_name="enterprise_mastered",
        verbose_name=_("master account"),
    )
    contact_name = models.CharField(_("contact"), max_length=100, blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=20, blank=True)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    billing_title = models.CharField(_("invoice title"), max_length=200, blank=True)
    billing_address = models.CharField(_("billing address"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("enterprise")
        verbose_name_plural = _("enterprises")

    def __str__(self) -> str:
        return self.name


class Role(models.Model):
    """A sub-account's role: purchasing, finance, warehouse, or one the operator adds."""

    name = models.CharField(_("name"), max_length=50, unique=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("sub-account role")
        verbose_name_plural = _("sub-account roles")

    def __str__(self) -> str:
        return self.name


class SubAccount(models.Model):
    """A member buying for an enterprise. One enterprise per member at a time."""

    enterprise = models.ForeignKey(
        Enterprise,
        on_delete=models.PROTECT,
        related_name="sub_accounts",
        verbose_name=_("enterprise"),
    )
    member = models.OneToOneField(
        Member, on_delete=models.PROTECT, related_name="sub_account", verbose_name=_("member")
    )
    role = models.ForeignKey(Role, on_delete=models.PROTECT, verbose_name=_("role"))
    added_at = models.DateTimeField(_("added at"), auto_now_add=True)

    class Meta:
        ordering = ["enterprise", "id"]
        verbose_name = _("sub-account")
        verbose_name_plural = _("sub-accounts")

    def __str__(self) -> str:
        return f"{self.enterprise} · {self.member} ({self.role})"
