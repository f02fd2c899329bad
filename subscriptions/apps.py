from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = _("Paid VIP plans")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from membership.portal import register_panel
        from subscriptions.portal import subscription_panel

        register_panel(subscription_panel)
