from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = _("Paid VIP plans")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from membership.portal import register_panel
        from subscriptions.portal import subscription_columns, subscription_panel

        register_panel(subscription_panel, columns=subscription_columns)

        from django.core.cache import cache
        from django.db.models.signals import post_delete, post_save

        from subscriptions.models import Plan

        def forget_free_plan(**kwargs):
            cache.delete("subscriptions:free-plan")

        post_save.connect(forget_free_plan, sender=Plan, weak=False, dispatch_uid="free-plan-save")
        post_delete.connect(forget_free_plan, sender=Plan, weak=False, dispatch_uid="free-plan-del")
