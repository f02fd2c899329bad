"""The admin's list of apps and models, built once for each set of answers it is built from.

Django builds it on every admin page (the sidebar shows it): for every registered model
it asks the ModelAdmin whether the user may see the app and what they may do with the
model, then reverses two URLs a model and sorts everything by its translated name —
a fifth of a list page's time. The asking still happens on every page, as Django does
it (a ModelAdmin may answer from the database: NudgeOfferAdmin, BirthdayRuleAdmin);
what is built from the answers depends on nothing else but the language and the URL
prefix, so it is kept under those, and each page gets its own copy.
"""

from django.urls import get_script_prefix
from django.utils.translation import get_language

# Lists by what they were built from; cleared when full (a few per role and language).
KEEP = 256


class AppListBuiltOnce:
    """An AdminSite mixin."""

    def get_app_list(self, request, app_label=None):
        key = (get_language(), get_script_prefix(), app_label, self._answers(request, app_label))
        cache = self.__dict__.setdefault("_app_lists", {})
        app_list = cache.get(key)
        if app_list is None:
            app_list = super().get_app_list(request, app_label)
            if len(cache) >= KEEP:
                cache.clear()
            cache[key] = app_list
        return [
            {**app, "models": [{**m, "perms": dict(m["perms"])} for m in app["models"]]}
            for app in app_list
        ]

    def _answers(self, request, app_label) -> tuple:
        """What each ModelAdmin says the user may do, asked as Django's _build_app_dict
        asks it (its model permissions only where the app may be seen)."""
        answers = []
        for model, model_admin in self._registry.items():
            if app_label and model._meta.app_label != app_label:
                continue
            perms = None
            if model_admin.has_module_permission(request):
                perms = tuple(model_admin.get_model_perms(request).items())
            answers.append((model, perms))
        return tuple(answers)
