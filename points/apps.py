from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PointsConfig(AppConfig):
    name = "points"
    verbose_name = _("Points")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from membership.portal import register_panel

        from . import receivers  # noqa: F401  (connects to membership's signals)
        from .portal import points_columns, points_panel

        register_panel(points_panel, columns=points_columns)
