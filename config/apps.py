from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    """Django's admin with our site, which asks staff for a TOTP token when required."""

    default_site = "config.security.StaffAdminSite"
