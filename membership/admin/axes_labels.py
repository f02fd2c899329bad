"""django-axes' lockout list in the operator's words: its status column is named after a
method, so it has no label of its own to translate."""

from django.utils.translation import gettext_lazy as _


def relabel() -> None:
    from axes.admin import AccessAttemptAdmin

    AccessAttemptAdmin.status.short_description = _("status")
