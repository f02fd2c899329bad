"""Admin widgets that keep what the database holds."""

from django import forms
from django.contrib.admin.widgets import AdminDateWidget, AdminSplitDateTime, AdminTimeWidget


class SecondsSplitDateTime(AdminSplitDateTime):
    """Date and time with the seconds shown, so an unchanged form posts the same moment.

    Django's zh-Hant time format is ``%H:%M``: the admin's own widget drops the seconds,
    so every save of an unchanged form looked like a change and cut them off.
    """

    def __init__(self, attrs=None):
        forms.MultiWidget.__init__(
            self, [AdminDateWidget, AdminTimeWidget(format="%H:%M:%S")], attrs
        )
