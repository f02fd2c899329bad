from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MembershipConfig(AppConfig):
    name = "membership"
    verbose_name = _("Membership")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import display
        from .bounds import send_integers_as_text_to_postgresql

        display.connect()
        send_integers_as_text_to_postgresql()
