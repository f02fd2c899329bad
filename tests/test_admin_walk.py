"""Every registered admin, walked as the superuser and as the demo operator (營運人員).

For each registered ModelAdmin (``registered_admins``): the list (every choice of every list
filter, and a search), the add and change pages, a valid add form posted (it saves)
and an invalid one (the errors show, nothing saves). The POST data is built from the
add page's own form and inline formsets, so a new admin is walked without new code;
OVERRIDES holds the few values a generic value cannot satisfy.
"""

import datetime as dt
import decimal
import io
import itertools
import re

import pytest
from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core import management
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import transaction
from django.test import RequestFactory
from django.test.utils import override_settings
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule

from membership.admin.common import registered_admins
from membership.management.commands.seed_demo import OPERATOR_APPS, operator_role

SUPERUSER, OPERATOR = "admin", "operator"
# What the operator role is meant to reach besides its apps: the login users, to pick one.
# Read (and, for lockouts, cleared) by the role, never added or edited.
OPERATOR_VIEW_ONLY = {"auth.user", "axes.accessattempt"}

# Only what a generic value cannot be: a checksummed business id, matching passwords,
# exactly one schedule of a periodic task, thresholds above the existing tiers'.
OVERRIDES = {
    "b2b.enterprise": {"business_id": "04595257"},
    "auth.user": {"password1": "walk-Pa55word!", "password2": "walk-Pa55word!"},
    "django_celery_beat.periodictask": {
        "crontab": "",
        "solar": "",
        "clocked": "",
        "expire_seconds": "",
    },
    "membership.tier": {"upgrade_threshold": 9_000_000, "retention_threshold": 9_000_000},
}

ADMINS = sorted(registered_admins(), key=lambda item: item[0]._meta.label_lower)
_unique = itertools.count(1)


@pytest.fixture(scope="module")
def demo_site(django_db_setup, django_db_blocker):
    """The demo data (seed commands) once for the module, rolled back at its end."""
    with django_db_blocker.unblock(), override_settings(DEBUG=True), transaction.atomic():
        management.call_command("seed_demo", members=40, stdout=io.StringIO())
        for command in ["seed_demo_b2b", "seed_demo_plans", "seed_demo_points"]:
            management.call_command(command, stdout=io.StringIO())
        operator_role()
        IntervalSchedule.objects.create(every=1, period=IntervalSchedule.DAYS)
        yield
        transaction.set_rollback(True)


def _label(model) -> str:
    return model._meta.label_lower


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _request_for(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


def _operator_is_meant_to(model, action: str) -> bool:
    if model._meta.app_label in OPERATOR_APPS:
        return not (model._meta.model_name == "auditentry" and action != "view")
    return _label(model) in OPERATOR_VIEW_ONLY and action == "view"


def _expected(model, model_admin, username: str, action: str, obj=None) -> int:
    """200 where the admin allows it at all and the role is meant to have it, else 403."""
    superuser = get_user_model().objects.get(username=SUPERUSER)
    request = _request_for(superuser)
    allowed = {
        "view": lambda: model_admin.has_view_or_change_permission(request, obj),
        "add": lambda: model_admin.has_add_permission(request),
    }[action]()
    if username == OPERATOR:
        allowed = allowed and _operator_is_meant_to(model, action)
    return 200 if allowed else 403


# -- generic form data ------------------------------------------------------


def _bounds(field) -> tuple:
    low = getattr(field, "min_value", None)
    high = getattr(field, "max_value", None)
    for validator in field.validators:
        if isinstance(validator, MinValueValidator):
            low = validator.limit_value if low is None else max(low, validator.limit_value)
        if isinstance(validator, MaxValueValidator):
            high = validator.limit_value if high is None else min(high, validator.limit_value)
    return low, high


def _number(field):
    """A small number inside the field's bounds (7 where nothing narrower is asked)."""
    low, high = _bounds(field)
    value = 7 if low is None else low + 7
    if high is not None and value > high:
        value = high if low is None else low + (high - low) / 2
    return int(value) if not isinstance(field, forms.DecimalField) else value


def _choice(field, pick: int):
    values = [value for value, _label in field.choices if value not in ("", None)]
    if isinstance(field, forms.ModelChoiceField):
        values = [str(getattr(value, "value", value)) for value in values]
    return values[pick % len(values)] if values else ""


def _later_day() -> str:
    """Each date a day after the one before, so a start comes before its end."""
    return (dt.date(2026, 1, 1) + dt.timedelta(days=next(_unique))).isoformat()


def _value(name: str, field, pick: int):
    """A valid value for one form field, or None to leave it out of the POST."""
    if field.disabled:
        return None
    if isinstance(field, forms.ModelMultipleChoiceField | forms.MultipleChoiceField):
        first = _choice(field, pick)
        return [first] if first else []
    if isinstance(field, forms.ModelChoiceField | forms.ChoiceField):
        return _choice(field, pick)
    if isinstance(field, forms.BooleanField):
        return "on"
    if isinstance(field, forms.SplitDateTimeField):
        return None  # expanded by _post_data into name_0 / name_1
    if isinstance(field, forms.DateTimeField):
        return f"{_later_day()} 10:00:00"
    if isinstance(field, forms.DateField):
        return _later_day()
    if isinstance(field, forms.TimeField):
        return "10:00:00"
    if isinstance(field, forms.DurationField):
        return "01:00:00"
    if isinstance(field, forms.IntegerField | forms.DecimalField | forms.FloatField):
        return str(_number(field))
    if isinstance(field, forms.EmailField):
        return f"walk{next(_unique)}@example.com"
    if isinstance(field, forms.URLField):
        return "https://example.com/"
    if isinstance(field, forms.CharField):
        text = f"walk-{next(_unique)}"
        return text[: field.max_length] if field.max_length else text
    return None


def _initial(form, name: str, field):
    value = form.initial.get(name, field.initial)
    if callable(value):
        value = value()
    if value in (None, "", []):
        return None
    if isinstance(value, dt.datetime | dt.date | decimal.Decimal | int):
        return str(value) if not isinstance(value, dt.datetime) else None
    if isinstance(value, list | tuple):
        return [str(getattr(v, "pk", v)) for v in value]
    return str(getattr(value, "pk", value))


def _post_data(page, model, picks: dict[str, int]) -> dict:
    """The add form filled with valid values, its inlines present and empty."""
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        if isinstance(field, forms.SplitDateTimeField):
            data[f"{name}_0"], data[f"{name}_1"] = _later_day(), "10:00:00"
            continue
        value = _initial(form, name, field)
        if value is None or picks.get(name):
            value = _value(name, field, picks.get(name, 0))
        if value is not None:
            data[name] = value
    data.update(OVERRIDES.get(_label(model), {}))
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in ["TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS"]:
            data[f"{management.prefix}-{name}"] = {"TOTAL_FORMS": 0, "INITIAL_FORMS": 0}.get(
                name, management.initial.get(name, 0)
            )
    return {k: v for k, v in data.items() if v is not None}


def _broken(page, data: dict) -> dict:
    """The same data with every value a form can refuse made wrong."""
    form = page.context["adminform"].form
    bad = dict(data)
    for name, field in form.fields.items():
        if field.disabled:
            continue
        if isinstance(field, forms.ModelMultipleChoiceField):
            bad[name] = ["999999999"]
        elif isinstance(field, forms.ModelChoiceField | forms.TypedChoiceField):
            bad[name] = "999999999"
        elif isinstance(field, forms.ChoiceField):
            bad[name] = "no-such-choice"
        elif isinstance(field, forms.IntegerField | forms.DecimalField | forms.FloatField):
            bad[name] = "not a number"
        elif isinstance(field, forms.SplitDateTimeField):
            bad[f"{name}_0"] = "not a date"
        elif isinstance(field, forms.DateField | forms.DateTimeField):
            bad[name] = "not a date"
        elif isinstance(field, forms.EmailField):
            bad[name] = "not an e-mail"
        elif field.required:
            bad[name] = ""
    return bad


def _errors(page) -> dict:
    if page.context is None or "adminform" not in page.context:
        return {}
    errors = dict(page.context["adminform"].form.errors)
    for inline in page.context["inline_admin_formsets"]:
        errors.update({f"{inline.formset.prefix}": e for e in inline.formset.errors if e})
        if inline.formset.non_form_errors():
            errors[f"{inline.formset.prefix}-non-form"] = inline.formset.non_form_errors()
    return errors


def _post_valid_add(client, model) -> tuple:
    """Post the add form; where a choice is refused (already used), try the next one."""
    picks: dict[str, int] = {}
    for _attempt in range(8):
        page = client.get(_url(model, "add"))
        response = client.post(_url(model, "add"), _post_data(page, model, picks))
        errors = _errors(response)
        if response.status_code == 302 or not errors:
            return response, errors
        form = page.context["adminform"].form
        choices = [n for n in errors if isinstance(form.fields.get(n), forms.ChoiceField)]
        if not choices:
            return response, errors
        for name in choices:
            picks[name] = picks.get(name, 0) + 1
    return response, errors


# -- the walk ---------------------------------------------------------------


CASES = [
    pytest.param(model, username, id=f"{_label(model)}-{username}")
    for model, _admin in ADMINS
    for username in (SUPERUSER, OPERATOR)
]


@pytest.mark.parametrize(("model", "username"), CASES)
def test_every_admin_lists_filters_searches_shows_and_saves_for_the_role(
    demo_site, db, client, model, username
):
    model_admin = admin.site.get_model_admin(model)
    client.force_login(get_user_model().objects.get(username=username))
    meant_to_view = _expected(model, model_admin, username, "view")

    # the list, every filter choice, a search
    listing = client.get(_url(model, "changelist"))
    assert listing.status_code == meant_to_view, listing.content[:500]
    if meant_to_view == 200:
        changelist = listing.context["cl"]
        for spec in changelist.filter_specs:
            for choice in spec.choices(changelist):
                page = client.get(_url(model, "changelist") + choice["query_string"])
                assert page.status_code == 200, (spec.title, choice["query_string"])
        if model_admin.get_search_fields(listing.wsgi_request):
            for term in ["0912-345-678", "王", "walk@Example.com"]:
                found = client.get(_url(model, "changelist"), {"q": term})
                assert found.status_code == 200, term

    # the change page of an existing row
    obj = model_admin.get_queryset(listing.wsgi_request).first()
    if obj is not None:
        change = client.get(_url(model, "change", obj.pk), follow=True)
        assert change.status_code == _expected(model, model_admin, username, "view", obj)

    # the add page, a valid add and an invalid one
    meant_to_add = _expected(model, model_admin, username, "add")
    add = client.get(_url(model, "add"))
    assert add.status_code == meant_to_add
    if meant_to_add != 200:
        refused = client.post(_url(model, "add"), {})
        assert refused.status_code == 403
        return

    before = model._default_manager.count()
    response, errors = _post_valid_add(client, model)
    # Saved: a redirect, or a page of its own (an API key is shown once, on the answer).
    assert response.status_code in (200, 302)
    assert model._default_manager.count() == before + 1, f"the valid add form was refused: {errors}"

    data = _post_data(add, model, {})
    broken = client.post(_url(model, "add"), _broken(add, data))
    assert broken.status_code == 200
    assert _errors(broken), "an invalid add form showed no errors"
    assert re.search(r'class="errornote"', broken.content.decode())
    assert model._default_manager.count() == before + 1


def test_the_operator_role_never_edits_the_audit_log(demo_site, db):
    role = operator_role()

    codenames = set(role.permissions.values_list("codename", flat=True))

    assert "view_auditentry" in codenames
    assert not {"add_auditentry", "change_auditentry", "delete_auditentry"} & codenames


def test_the_operator_role_reaches_enterprises_plans_and_subscriptions(demo_site, db):
    role = operator_role()

    codenames = set(role.permissions.values_list("codename", flat=True))

    assert {"add_enterprise", "change_enterprise", "add_plan", "change_plan"} <= codenames
    assert {"view_subscription", "manage_subscription"} <= codenames
