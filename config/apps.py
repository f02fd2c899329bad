from axes.apps import AppConfig as _AxesConfig
from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig
from django.utils.translation import gettext_lazy as _


class AdminConfig(DjangoAdminConfig):
    """Django's admin with our site, which asks staff for a TOTP token when required."""

    default_site = "config.security.StaffAdminSite"


class AxesConfig(_AxesConfig):
    """django-axes under a name a merchant reads (its own is the package's, "Axes")."""

    verbose_name = _("Login protection")
