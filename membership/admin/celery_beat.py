"""django-celery-beat's screens in the operator's language.

Its own strings are translated in our .po (it ships no zh-Hant); here are the few
labels it never passes through gettext: a field named by a plain string and two
columns named after their methods. Cron descriptions come from cron-descriptor,
which has no Traditional Chinese: zh-Hant shows the cron expression instead.
"""

from django.contrib import admin
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import CrontabSchedule, PeriodicTask


def _in_words(crontab: CrontabSchedule) -> str:
    if (get_language() or "").lower().startswith("zh"):
        return str(crontab)
    return crontab.human_readable


class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin):
    @admin.display(description=_("schedule in words"))
    def crontab_translation(self, obj: PeriodicTask) -> str:
        return _in_words(obj.crontab) if obj.crontab_id else ""


class CrontabScheduleAdmin(beat_admin.CrontabScheduleAdmin):
    @admin.display(description=_("schedule in words"))
    def human_readable(self, obj: CrontabSchedule) -> str:
        return _in_words(obj)


def relabel() -> None:
    for model, model_admin in [
        (PeriodicTask, PeriodicTaskAdmin),
        (CrontabSchedule, CrontabScheduleAdmin),
    ]:
        if admin.site.is_registered(model):
            admin.site.unregister(model)
        admin.site.register(model, model_admin)
    # "Task Name" is a plain string in its model: give it to gettext at runtime.
    # deconstruct() keeps the declared name, so no migration follows.
    task = PeriodicTask._meta.get_field("task")
    task.verbose_name = _("Task Name")
