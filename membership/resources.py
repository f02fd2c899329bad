"""What the membership lists and the programme's configuration look like in a file.

``ListResource`` is an admin list as the operator reads it: headers are the fields'
verbose names in the operator's language, values are what the list shows (group and
tier names, choice labels, 是/否, times in Asia/Taipei), read with ``select_related``
and ``prefetch_related`` in chunks so an export of any length makes a fixed number of
queries per chunk.

``ConfigResource`` is a piece of the programme (VIP groups, tiers with their benefits,
tags; the points app adds rewards, promotions and partner brands) that exports and
imports by natural key — a group by name, a tier by group and name, a partner by code —
never by database id, so a programme copies from a test site to the live one. Every
row is validated with ``full_clean()`` (the models' own rules); a row that breaks one
refuses the whole import with the row's errors. A confirmed import is one audit entry
and is followed by the usual recompute (``record_configuration_change``).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export import fields, resources, widgets

from imports.exports import FORMULA_STARTS
from membership import audit_display
from membership.models import (
    AuditEntry,
    GiftIssue,
    Member,
    Nudge,
    Order,
    Tag,
    Tier,
    TierBenefit,
    TierHistory,
    VipGroup,
)
from membership.services.configuration import record_configuration_change
from membership.services.versions import GROUP_FIELDS, TIER_FIELDS

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
TIME_INPUT_FORMATS = [TIME_FORMAT, "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M"]
LIST_SEPARATOR = "\n"


def cell(value):
    """One value as the admin shows it, in a type every format can hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).strftime(TIME_FORMAT)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | Decimal):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def display_value(obj, path: str):
    """``member__tier`` → the member's tier as text; a choice gives its label."""
    *relations, last = path.split("__")
    for name in relations:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    field = obj._meta.get_field(last)
    if getattr(field, "choices", None):
        return getattr(obj, f"get_{last}_display")()
    return getattr(obj, last)


def path_label(model, path: str) -> str:
    """A header from verbose names: ``member__phone`` → 會員手機 (member phone)."""
    names = path.split("__")
    first = model._meta.get_field(names[0])
    label = verbose_name(first)
    if len(names) == 1 or names[-1] == "name":
        return label
    target = first.related_model
    for name in names[1:-1]:
        target = target._meta.get_field(name).related_model
    last = target._meta.get_field(names[-1])
    return _("%(relation)s %(field)s") % {"relation": label, "field": verbose_name(last)}


def verbose_name(field) -> str:
    """The field's label; a relation left unnamed takes its model's (member → 會員)."""
    name = getattr(field, "verbose_name", None)
    if isinstance(name, str) and field.is_relation and field.related_model:
        return str(field.related_model._meta.verbose_name)  # Django's own, untranslated
    return str(name if name is not None else field.name)


class ListResource(resources.ModelResource):
    """An admin list in a file. Subclasses name the columns (paths) in ``Meta.fields``.

    ``labels`` gives a header where the verbose names do not say it; ``dehydrate_<name>``
    methods compute a column; ``select_related``/``prefetch_related`` name what the
    columns read, so no row makes a query of its own.
    """

    labels: dict = {}
    select_related: tuple = ()
    prefetch_related: tuple = ()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        model = self._meta.model
        for name, field in self.fields.items():
            label = self.labels.get(name)
            field.column_name = str(label) if label else path_label(model, name)

    def filter_export(self, queryset, **kwargs):
        if self.select_related:
            queryset = queryset.select_related(*self.select_related)
        if self.prefetch_related:
            queryset = queryset.prefetch_related(*self.prefetch_related)
        return queryset

    def iter_queryset(self, queryset):
        # Django runs prefetch_related per chunk of iterator(): no OFFSET paging.
        yield from queryset.iterator(chunk_size=self.get_chunk_size())

    def export_field(self, field, instance, **kwargs):
        name = self.get_field_name(field)
        dehydrate = getattr(self, f"dehydrate_{name}", None)
        value = dehydrate(instance) if dehydrate else display_value(instance, name)
        return cell(value)


def names(related) -> str:
    """The names of a prefetched set, sorted, one list per cell."""
    return ", ".join(sorted(str(obj) for obj in related))


class MemberResource(ListResource):
    labels = {"external_id": gettext_lazy("member number")}
    select_related = ("group", "tier__group")
    prefetch_related = ("member_tags__tag",)

    class Meta:
        model = Member
        fields = (
            "external_id",
            "name",
            "phone",
            "email",
            "birthday",
            "language",
            "joined_at",
            "group",
            "tier",
            "tier_since",
            "next_review_on",
            "last_order_at",
            "tags",
        )

    def dehydrate_tier(self, member: Member):
        return member.tier.name if member.tier else ""

    def dehydrate_tags(self, member: Member) -> str:
        return names(mt.tag for mt in member.member_tags.all())


class OrderResource(ListResource):
    labels = {"member__external_id": gettext_lazy("member number")}
    select_related = ("member",)

    class Meta:
        model = Order
        fields = (
            "source",
            "external_id",
            "member__external_id",
            "member__name",
            "amount",
            "refunded_amount",
            "status",
            "channel",
            "placed_at",
            "created_at",
        )


class TierHistoryResource(ListResource):
    labels = {
        "member__external_id": gettext_lazy("member number"),
        "cause": gettext_lazy("cause of the change"),
    }
    select_related = ("member", "from_group", "from_tier", "to_group", "to_tier", "actor")

    class Meta:
        model = TierHistory
        fields = (
            "created_at",
            "member__external_id",
            "member__name",
            "from_group",
            "from_tier__name",
            "to_group",
            "to_tier__name",
            "cause",
            "actor",
            "reason",
        )


class GiftIssueResource(ListResource):
    labels = {"member__external_id": gettext_lazy("member number")}
    select_related = ("member", "tier__group")

    class Meta:
        model = GiftIssue
        fields = ("issued_at", "member__external_id", "member__name", "tier", "gift")


class AuditEntryResource(ListResource):
    # The same words as the audit log's pages: 調整等級, 會員 (not member.adjust_tier).
    def dehydrate_action(self, entry: AuditEntry) -> str:
        return audit_display.action_label(entry.action)

    def dehydrate_object_type(self, entry: AuditEntry) -> str:
        return audit_display.object_type_label(entry.object_type)

    class Meta:
        model = AuditEntry
        fields = (
            "created_at",
            "actor_name",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "before",
            "after",
            "reason",
        )


class NudgeResource(ListResource):
    labels = {"member__external_id": gettext_lazy("member number")}
    select_related = ("member", "tier__group")

    class Meta:
        model = Nudge
        fields = (
            "period",
            "kind",
            "member__external_id",
            "member__name",
            "tier",
            "amount",
            "created_at",
            "sent_at",
        )


# -- configuration ----------------------------------------------------------------


def unescape(value):
    """Undo the export's formula escape, so a file exported here imports as it was."""
    if isinstance(value, str) and value[:1] == "'" and value[1:2] in FORMULA_STARTS:
        return value[1:]
    return value


class ChoiceWidget(widgets.Widget):
    """A choice as its label (金額 / Spend); the stored code is accepted too."""

    def __init__(self, choices, **kwargs):
        super().__init__(**kwargs)
        self.choices = list(choices)

    def clean(self, value, row=None, **kwargs):
        value = str(value or "").strip()
        for code, label in self.choices:
            if value in (code, *labels_in_every_language(label)):
                return code
        allowed = "、".join(str(label) for _code, label in self.choices)
        raise ValueError(
            _("“%(value)s” is not one of: %(allowed)s") % {"value": value, "allowed": allowed}
        )

    def render(self, value, obj=None, **kwargs):
        return str(dict(self.choices).get(value, value or ""))


class NamesWidget(widgets.ManyToManyWidget):
    """Several objects by name, comma-separated; a name that does not exist is an error."""

    def clean(self, value, row=None, **kwargs):
        wanted = {n.strip() for n in str(value or "").split(self.separator) if n.strip()}
        found = list(self.model.objects.filter(**{f"{self.field}__in": wanted}))
        missing = wanted - {str(getattr(obj, self.field)) for obj in found}
        if missing:
            raise ValueError(
                _("Unknown %(things)s: %(names)s")
                % {
                    "things": self.model._meta.verbose_name_plural,
                    "names": ", ".join(sorted(missing)),
                }
            )
        return found


class YesNoWidget(widgets.Widget):
    YES = {"1", "true", "yes", "y", "是"}
    NO = {"0", "false", "no", "n", "否", ""}

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):
            return value
        text = str(value if value is not None else "").strip().lower()
        if text in self.YES or text == _("Yes").lower():
            return True
        if text in self.NO or text == _("No").lower():
            return False
        raise ValueError(_("“%(value)s” is neither yes nor no.") % {"value": value})

    def render(self, value, obj=None, **kwargs):
        return _("Yes") if value else _("No")


class LocalDateTimeWidget(widgets.Widget):
    """A time in Asia/Taipei, written as 2026-01-31 23:59:59."""

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, dt.datetime):
            return value if timezone.is_aware(value) else timezone.make_aware(value)
        text = str(value or "").strip()
        for fmt in TIME_INPUT_FORMATS:
            try:
                return timezone.make_aware(dt.datetime.strptime(text, fmt))  # noqa: DTZ007
            except ValueError:
                continue
        raise ValueError(_("“%(value)s” is not a time like 2026-01-31 23:59:59.") % {"value": text})

    def render(self, value, obj=None, **kwargs):
        return cell(value)


class NameWidget(widgets.ForeignKeyWidget):
    """An object by its name (or code); one that does not exist is the row's error."""

    def clean(self, value, row=None, **kwargs):
        text = str(value or "").strip()
        if not text:
            return None
        found = self.model.objects.filter(**{self.field: text}).first()
        if found is None:
            raise ValueError(
                _("There is no %(thing)s “%(name)s”.")
                % {"thing": self.model._meta.verbose_name, "name": text}
            )
        return found


class TierWidget(widgets.ForeignKeyWidget):
    """A tier by its group and name, “全館 VIP · 金卡”, as the admin writes it."""

    def __init__(self, **kwargs):
        super().__init__(Tier, **kwargs)

    def clean(self, value, row=None, **kwargs):
        text = str(value or "").strip()
        if not text:
            return None
        return tier_by_label(text)

    def render(self, value, obj=None, **kwargs):
        return str(value) if value else ""


def tier_by_label(text: str) -> Tier:
    group, _sep, name = (part.strip() for part in text.partition("·"))
    tier = Tier.objects.filter(group__name=group, name=name).select_related("group").first()
    if tier is None:
        raise ValueError(_("There is no tier “%(tier)s”.") % {"tier": text})
    return tier


def labels_in_every_language(label) -> set[str]:
    found = set()
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            found.add(str(label))
    return found


class ConfigResource(resources.ModelResource):
    """A piece of the programme, looked up by natural key, validated, audited on import."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name, field in self.fields.items():
            field.column_name = self.header(name)

    # Fields of a saved row that belong to the live programme version: changed only
    # through a draft (as the admin's forms show them read-only), never by an import.
    versioned_fields: tuple[str, ...] = ()

    def header(self, name: str) -> str:
        model_field = self._meta.model._meta.get_field(name)
        return str(model_field.verbose_name)

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        errors = dict(import_validation_errors or {})
        if instance.pk and self.versioned_fields:
            saved = (
                type(instance).objects.filter(pk=instance.pk).values(*self.versioned_fields).first()
            )
            for name in self.versioned_fields:
                if saved is not None and getattr(instance, name) != saved[name]:
                    errors.setdefault(name, []).append(
                        _(
                            "%(value)s: live rules change through a programme version "
                            "(add a draft, preview it, publish it); this file may not change "
                            "them."
                        )
                        % {"value": getattr(instance, name)}
                    )
        super().validate_instance(instance, errors, validate_unique)

    def before_import(self, dataset, **kwargs):
        """Headers in either language, or the field names, are read as ours."""
        ours = {}
        for name, field in self.fields.items():
            for language, _label in settings.LANGUAGES:
                with translation.override(language):
                    ours[self.header(name)] = field.column_name
            ours[name] = field.column_name
        dataset.headers = [ours.get(str(h).strip(), h) for h in dataset.headers or []]

    def before_import_row(self, row, **kwargs):
        for key in list(row):
            row[key] = unescape(row[key])

    def after_import(self, dataset, result, **kwargs):
        super().after_import(dataset, result, **kwargs)
        if kwargs.get("dry_run") or result.has_errors() or result.has_validation_errors():
            return
        opts = self._meta.model._meta
        rows = [row for row in result.rows if row.import_type in ("new", "update")]
        if not rows:
            return
        record_configuration_change(
            actor=kwargs.get("user"),
            action=f"{opts.model_name}.import",
            object_type=opts.label_lower,
            object_id="*",
            object_repr=_("%(n)d %(things)s imported from %(file)s")
            % {
                "n": len(rows),
                "things": opts.verbose_name_plural,
                "file": kwargs.get("file_name") or "—",
            },
            before=None,
            after={
                "new": [r.object_repr for r in rows if r.import_type == "new"],
                "updated": [r.object_repr for r in rows if r.import_type == "update"],
            },
        )


class TagResource(ConfigResource):
    kind = fields.Field(attribute="kind", widget=ChoiceWidget(Tag.Kind.choices))

    class Meta:
        model = Tag
        fields = ("name", "kind", "description")
        import_id_fields = ("name",)
        clean_model_instances = True


class VipGroupResource(ConfigResource):
    versioned_fields = tuple(GROUP_FIELDS)
    is_default = fields.Field(attribute="is_default", widget=YesNoWidget())
    entry_tags = fields.Field(attribute="entry_tags", widget=NamesWidget(Tag, field="name"))
    entry_requires = fields.Field(
        attribute="entry_requires",
        widget=ChoiceWidget(VipGroup._meta.get_field("entry_requires").choices),
    )
    metric = fields.Field(
        attribute="metric", widget=ChoiceWidget(VipGroup._meta.get_field("metric").choices)
    )
    window = fields.Field(
        attribute="window", widget=ChoiceWidget(VipGroup._meta.get_field("window").choices)
    )

    class Meta:
        model = VipGroup
        fields = (
            "name",
            "description",
            "priority",
            "is_default",
            "entry_tags",
            "entry_amount",
            "entry_requires",
            "metric",
            "window",
            "review_period_months",
            "review_warning_days",
        )
        import_id_fields = ("name",)
        clean_model_instances = True

    def get_queryset(self):
        return super().get_queryset().prefetch_related("entry_tags")


class TierResource(ConfigResource):
    """Tiers with their benefits (one per line) and their group by name."""

    versioned_fields = tuple(TIER_FIELDS)

    group = fields.Field(attribute="group", widget=NameWidget(VipGroup, field="name"))
    free_shipping = fields.Field(attribute="free_shipping", widget=YesNoWidget())
    benefits = fields.Field(attribute="imported_benefits", widget=widgets.Widget())

    class Meta:
        model = Tier
        fields = (
            "group",
            "rank",
            "name",
            "badge_colour",
            "upgrade_threshold",
            "retention_threshold",
            "discount_percent",
            "points_per_100",
            "free_shipping",
            "birthday_perk",
            "upgrade_gift",
            "benefits",
        )
        import_id_fields = ("group", "name")
        clean_model_instances = True

    def header(self, name: str) -> str:
        if name == "benefits":
            return str(TierBenefit._meta.verbose_name_plural)
        return super().header(name)

    def get_queryset(self):
        return super().get_queryset().select_related("group").prefetch_related("benefits")

    def dehydrate_benefits(self, tier: Tier) -> str:
        return LIST_SEPARATOR.join(b.text for b in tier.benefits.all())

    def after_save_instance(self, instance, row, **kwargs):
        if not hasattr(instance, "imported_benefits"):
            return  # no benefits column: the tier keeps the ones it has
        texts = str(instance.imported_benefits or "").splitlines()
        TierBenefit.objects.filter(tier=instance).delete()
        TierBenefit.objects.bulk_create(
            TierBenefit(tier=instance, position=i, text=text.strip())
            for i, text in enumerate(texts)
            if text.strip()
        )
