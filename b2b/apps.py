from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class B2bConfig(AppConfig):
    name = "b2b"
    verbose_name = _("Enterprises")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from b2b.portal import enterprise_columns, enterprise_panel
        from membership.portal import register_panel

        register_panel(enterprise_panel, columns=enterprise_columns)
