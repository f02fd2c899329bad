"""The audit log in words: action and object-type labels, before/after as a field table.

The audit log stores what the code knows (``member.adjust_tier``, ``membership.member``,
``{"tier": 7}``); operators read labels (調整等級, 會員) and names (銀卡), with every time
in Asia/Taipei. This module is the one place that turns the first into the second.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.functions import Cast
from django.urls import NoReverseMatch, reverse
from django.utils import formats, timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

# Every action string the code records, with its label. A test reads the code for
# ``action="..."`` and the audited configuration admins, and fails on one missing here.
ACTION_LABELS = {
    "member.add": _("Add member"),
    "member.change": _("Edit member details"),
    "member.adjust_tier": _("Adjust tier"),
    "member.tags": _("Change tags"),
    "member.import": _("Import members"),
    "member.data_export": _("Export personal data"),
    "member.erase": _("Erase personal data"),
    "audience.save": _("Save audience"),
    "api_key.add": _("Create API key"),
    "api_key.revoke": _("Revoke API key"),
    "webhook_endpoint.add": _("Create webhook endpoint"),
    "webhook_endpoint.change": _("Change webhook endpoint"),
    "webhook_endpoint.disable": _("Turn off failing webhook endpoint"),
    "webhook_delivery.redeliver": _("Redeliver webhook"),
    "order.add": _("Add order"),
    "order.refund": _("Refund order"),
    "order.import": _("Import orders"),
    "points.adjust": _("Adjust points"),
    "enterprise.add": _("Add enterprise"),
    "enterprise.change": _("Edit enterprise"),
    "enterprise.sub_account": _("Change sub-account"),
    "subscription.cancel": _("Cancel subscription"),
    "subscription.resume": _("Resume subscription"),
    "subscription.change_plan": _("Change subscription plan"),
    "subscription.retry_now": _("Retry charge now"),
    "vipgroup.add": _("Add VIP group"),
    "vipgroup.change": _("Edit VIP group"),
    "vipgroup.delete": _("Delete VIP group"),
    "vipgroup.reorder": _("Reorder VIP groups"),
    "programmeversion.draft": _("Draft a programme version"),
    "programmeversion.change": _("Edit a programme version draft"),
    "programmeversion.preview": _("Preview a programme version"),
    "programmeversion.approve": _("Approve a programme version"),
    "programmeversion.publish": _("Publish a programme version"),
    "programmeversion.end": _("End a seasonal programme version"),
    "programmeversion.restore": _("Restore the replaced programme version"),
    "programmeversion.reject": _("Reject a programme version"),
    "adjustrule.add": _("Add an auto-adjust rule"),
    "adjustrule.change": _("Edit an auto-adjust rule"),
    "adjustproposal.propose": _("Propose an auto-adjustment"),
    "adjustproposal.notify": _("Flag a measure for review"),
    "adjustproposal.apply": _("Apply an auto-adjustment by itself"),
    "adjustproposal.approve": _("Approve an auto-adjustment"),
    "adjustproposal.reject": _("Reject an auto-adjustment"),
    "tier.add": _("Add tier"),
    "tier.change": _("Edit tier"),
    "tier.delete": _("Delete tier"),
    "tierbenefit.add": _("Add tier benefit"),
    "tierbenefit.change": _("Edit tier benefit"),
    "tierbenefit.delete": _("Delete tier benefit"),
}

# The object types the audit log holds, for the admin's filter (labels from the models).
OBJECT_TYPES = [
    "membership.member",
    "membership.order",
    "membership.vipgroup",
    "membership.tier",
    "membership.tierbenefit",
    "b2b.enterprise",
    "subscriptions.subscription",
    "imports.importjob",
    "segments.audience",
    "api.apikey",
    "api.webhookendpoint",
    "api.webhookdelivery",
]

# Keys some services record that are not fields of the audited model.
EXTRA_FIELD_LABELS = {
    "tags": _("tags"),
    "points": _("points"),
    "entry": _("ledger entry"),
    "refund": _("refund"),
    "file": _("file"),
    "rows": _("rows"),
    "enterprise": _("enterprise"),
    "role": _("role"),
    "filters": _("filters"),
    "by": _("requested by"),
}

# Fields holding whole NT$ (thresholds only when the tier's group counts spend).
MONEY_FIELDS = {
    ("membership.order", "amount"),
    ("membership.order", "refunded_amount"),
    ("membership.vipgroup", "entry_amount"),
}
THRESHOLD_FIELDS = {
    ("membership.tier", "upgrade_threshold"),
    ("membership.tier", "retention_threshold"),
}
# Keys holding the id of a row that has no page of its own (a ledger entry).
REFERENCE_KEYS = {"entry"}
# Lists whose order is the point (the groups' priority); other lists are sets.
ORDERED_LISTS = {"priority"}
VERBS = {"add": _("Add %(thing)s"), "change": _("Edit %(thing)s"), "delete": _("Delete %(thing)s")}
EMPTY = "—"


def action_label(action: str) -> str:
    """調整等級 for ``member.adjust_tier``; an unknown action still reads (修改 X, or X · verb)."""
    if action in ACTION_LABELS:
        return str(ACTION_LABELS[action])
    prefix, _dot, verb = action.partition(".")
    model = _model_named(prefix)
    thing = str(model._meta.verbose_name) if model else prefix.replace("_", " ")
    if verb in VERBS:
        return str(VERBS[verb]) % {"thing": thing}
    return f"{thing} · {verb.replace('_', ' ')}" if verb else thing


def object_type_label(object_type: str) -> str:
    """會員 for ``membership.member``; the stored text when no model has that label."""
    model = _model(object_type)
    return capfirst(str(model._meta.verbose_name)) if model else object_type


def actor_label(entry) -> str:
    """Who acted: the operator's username, or 系統 for the automatic jobs."""
    if entry.actor_id is None and entry.actor_name in {"", "system"}:
        return gettext("system")
    return entry.actor_name


def local_time(value: dt.datetime) -> str:
    """A moment as operators read it: Asia/Taipei (the site's zone), to the second."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class FieldChange:
    key: str
    label: str
    before: str
    after: str
    changed: bool


@dataclass(frozen=True)
class ReadableEntry:
    entry: object
    action: str
    object_type: str
    time: str
    actor: str
    rows: list[FieldChange]

    @property
    def has_before(self) -> bool:
        return self.entry.before is not None

    @property
    def has_after(self) -> bool:
        return self.entry.after is not None


def readable_entries(entries: Iterable) -> list[ReadableEntry]:
    """Audit entries in words. Names behind ids are fetched in one query per model."""
    entries = list(entries)
    names = _Names()
    for entry in entries:
        model = _model(entry.object_type)
        for key, values in _values(entry).items():
            names.want(model, key, values)
    names.fetch()
    return [
        ReadableEntry(
            entry=entry,
            action=action_label(entry.action),
            object_type=object_type_label(entry.object_type),
            time=local_time(entry.created_at),
            actor=actor_label(entry),
            rows=_rows(entry, names),
        )
        for entry in entries
    ]


def readable_entry(entry) -> ReadableEntry:
    return readable_entries([entry])[0]


def changed_field_labels(entry) -> list[str]:
    """The fields an entry changed (all it recorded, for an add or a delete); no queries."""
    model = _model(entry.object_type)
    one_sided = entry.before is None or entry.after is None
    return [
        _label(_field(model, key), key)
        for key in _values(entry)
        if one_sided or _changed(entry, key)
    ]


def admin_url(entry) -> str | None:
    """The admin page of the entry's object, or of its list for a change to the whole list."""
    model = _model(entry.object_type)
    if model is None:
        return None
    opts = model._meta
    name = f"admin:{opts.app_label}_{opts.model_name}"
    try:
        if entry.object_id.isdigit():
            return reverse(f"{name}_change", args=[entry.object_id])
        return reverse(f"{name}_changelist")
    except NoReverseMatch:
        return None


# -- the field table ------------------------------------------------------------


def _values(entry) -> dict[str, list]:
    before, after = entry.before or {}, entry.after or {}
    keys = [*before, *(k for k in after if k not in before)]
    return {key: [before.get(key), after.get(key)] for key in keys}


def _changed(entry, key: str) -> bool:
    """A field changed: the entry has both sides and they differ (an add changes nothing)."""
    if entry.before is None or entry.after is None:
        return False
    return entry.before.get(key) != entry.after.get(key)


def _rows(entry, names: _Names) -> list[FieldChange]:
    model = _model(entry.object_type)
    before, after = entry.before or {}, entry.after or {}
    context = {**before, **after}
    rows = []
    for key in _values(entry):
        field = _field(model, key)
        rows.append(
            FieldChange(
                key=key,
                label=_label(field, key),
                before=_display(entry.object_type, field, key, before.get(key), names, context)
                if entry.before is not None
                else "",
                after=_display(entry.object_type, field, key, after.get(key), names, context)
                if entry.after is not None
                else "",
                changed=_changed(entry, key),
            )
        )
    return rows


def _label(field, key: str) -> str:
    if field is not None and hasattr(field, "verbose_name"):
        return str(field.verbose_name)
    if key in EXTRA_FIELD_LABELS:
        return str(EXTRA_FIELD_LABELS[key])
    return key.replace("_", " ")


def _display(object_type: str, field, key: str, value, names: _Names, context: dict) -> str:
    if value is None or value == "" or value == []:
        return EMPTY
    if isinstance(value, list):
        if field is not None and field.many_to_many:
            items = [names.name(field.related_model, v) for v in value]
        else:
            items = [str(v) for v in value]
        return (" › " if key in ORDERED_LISTS else "、").join(items)
    if field is not None and field.is_relation and isinstance(value, int):
        return names.name(field.related_model, value)
    if field is not None and field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if isinstance(field, models.DateTimeField) and (moment := _datetime(value)):
        return local_time(moment)
    if isinstance(field, models.DateField) and (day := _date(value)):
        return day.isoformat()
    if isinstance(field, models.DecimalField):
        with contextlib.suppress(InvalidOperation):
            return f"{Decimal(str(value)).normalize():f}"  # 5.0 → 5, 12.5 stays
    if key in REFERENCE_KEYS:
        return f"#{value}"
    if isinstance(value, int):
        if (object_type, key) in MONEY_FIELDS or (
            (object_type, key) in THRESHOLD_FIELDS and names.counts_spend(context.get("group"))
        ):
            return f"NT${value:,}"
        return formats.number_format(value, force_grouping=True)
    return str(value)


def _datetime(value) -> dt.datetime | None:
    try:
        moment = parse_datetime(str(value))
    except ValueError:
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def _date(value) -> dt.date | None:
    try:
        return parse_date(str(value)[:10])
    except ValueError:
        return None


class _Names:
    """The names behind ids in a page of entries: one query per related model."""

    def __init__(self) -> None:
        self._wanted: dict[type[models.Model], set[int]] = defaultdict(set)
        self._found: dict[type[models.Model], dict[int, models.Model]] = {}

    def want(self, model, key: str, values: list) -> None:
        field = _field(model, key)
        if field is None or not field.is_relation or field.related_model is None:
            return
        for value in values:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, int) and not isinstance(item, bool):
                    self._wanted[field.related_model].add(item)

    def fetch(self) -> None:
        for model, ids in self._wanted.items():
            self._found[model] = model._default_manager.in_bulk(ids)

    def name(self, model, pk) -> str:
        obj = self._found.get(model, {}).get(pk)
        if obj is None:
            return gettext("#%(id)s (deleted)") % {"id": pk}
        # A tier is read within its group on the page: 銀卡, not 全館 VIP · 銀卡.
        return obj.name if model._meta.label_lower == "membership.tier" else str(obj)

    def counts_spend(self, group_id) -> bool:
        from membership.models import Metric, VipGroup

        group = self._found.get(VipGroup, {}).get(group_id)
        return group is not None and group.metric == Metric.SPEND


def _model(object_type: str):
    try:
        return apps.get_model(object_type)
    except (LookupError, ValueError):
        return None


def _model_named(model_name: str):
    for model in apps.get_models():
        if model._meta.model_name == model_name:
            return model
    return None


def _field(model, key: str):
    if model is None:
        return None
    try:
        return model._meta.get_field(key)
    except FieldDoesNotExist:
        return None


# -- which entries are about a member ----------------------------------------------


def members_matching(term: str):
    """Members an operator means by a name, an external id, an e-mail or a phone as typed."""
    from imports.reading import normalise_phone
    from membership.models import Member

    term = term.strip()
    query = (
        models.Q(name__icontains=term)
        | models.Q(external_id=term)
        | models.Q(email__iexact=term)
        | models.Q(phone=term)
    )
    with contextlib.suppress(ValueError):  # not a phone: the other fields still match
        query |= models.Q(phone=normalise_phone(term))
    return Member.objects.filter(query)


def entries_about_members(members):
    """Audit entries of these members and of their orders, as one set-based query."""
    from membership.models import AuditEntry, Order

    as_text = lambda qs: qs.annotate(audit_id=Cast("pk", models.CharField())).values("audit_id")  # noqa: E731
    return AuditEntry.objects.filter(
        models.Q(object_type="membership.member", object_id__in=as_text(members))
        | models.Q(
            object_type="membership.order",
            object_id__in=as_text(Order.objects.filter(member__in=members.values("pk"))),
        )
    )
