"""VIP groups (drag-ordered priority), tiers with their benefits, and tags."""

import json

from adminsortable2.admin import SortableAdminBase, SortableAdminMixin, SortableTabularInline
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import (
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotAllowed,
    JsonResponse,
)
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from membership.admin.common import discount_column
from membership.models import Tag, Tier, TierBenefit, VipGroup
from membership.resources import TagResource, TierResource, VipGroupResource
from membership.services import programme, snapshot
from membership.services.configuration import programme_warnings, record_configuration_change

from .exports import ConfigImportExportMixin


class AuditedConfigMixin:
    """Every save of configuration, inlines included, becomes an audit entry."""

    def save_model(self, request, obj, form, change):
        before = snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        record_configuration_change(
            actor=request.user,
            action=f"{obj._meta.model_name}.{'change' if change else 'add'}",
            obj=obj,
            before=before,
            after=snapshot(obj),
        )

    def save_formset(self, request, form, formset, change):
        befores = {
            f.instance.pk: snapshot(type(f.instance).objects.get(pk=f.instance.pk))
            for f in formset.forms
            if f.instance.pk and f.has_changed()
        }
        deleted = [
            (f.instance, snapshot(f.instance)) for f in formset.deleted_forms if f.instance.pk
        ]
        super().save_formset(request, form, formset, change)
        for obj, before in deleted:
            record_configuration_change(
                actor=request.user,
                action=f"{obj._meta.model_name}.delete",
                obj=obj,
                before=before,
                after=None,
            )
        for obj in [*formset.new_objects, *(o for o, _f in formset.changed_objects)]:
            record_configuration_change(
                actor=request.user,
                action=f"{obj._meta.model_name}.{'change' if obj.pk in befores else 'add'}",
                obj=obj,
                before=befores.get(obj.pk),
                after=snapshot(obj),
            )

    def response_post_save_change(self, request, obj):
        self._warn(request)
        return super().response_post_save_change(request, obj)

    def response_post_save_add(self, request, obj):
        self._warn(request)
        return super().response_post_save_add(request, obj)

    def _warn(self, request):
        for warning in programme_warnings():
            messages.warning(request, warning)


def freeze_live_rules(form: forms.ModelForm, fields: list[str]) -> None:
    """A saved group's rule and a saved tier's thresholds belong to the live programme
    version: shown, not edited here; a change is a new draft (programme versions)."""
    if not form.instance.pk:
        return
    hint = format_html(
        '{} <a href="{}">{}</a>',
        gettext("Live rules change through a programme version:"),
        reverse("admin:membership_programmeversion_add"),
        gettext("Add a draft"),
    )
    for name in fields:
        if name in form.fields:
            form.fields[name].disabled = True
            form.fields[name].help_text = hint


THRESHOLD_FIELDS = ["upgrade_threshold", "retention_threshold"]
GROUP_RULE_FIELDS = ["entry_amount", "entry_requires", "metric", "window", "review_period_months"]


class LiveTierForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        freeze_live_rules(self, THRESHOLD_FIELDS)


class VipGroupForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        freeze_live_rules(self, GROUP_RULE_FIELDS)


class TierLadderFormSet(BaseInlineFormSet):
    """The group's tiers checked together: thresholds rise with rank (programme's rule).

    Each problem is shown on the row and field it concerns, and listed above the
    table (and at the top of the page) so the operator sees it without scrolling.
    """

    def clean(self):
        super().clean()
        forms_by_key, rungs, removed = {}, [], []
        for index, form in enumerate(self.forms):
            if self.can_delete and self._should_delete_form(form):
                if form.instance.pk:
                    removed.append(form.instance.pk)
                continue
            data = getattr(form, "cleaned_data", None) or {}
            if data.get("rank") is None or not data.get("name"):
                continue  # an empty extra row, or a row whose own errors are shown
            key = form.instance.pk or f"new-{index}"
            forms_by_key[key] = form
            rungs.append(
                programme.Rung(
                    key=key,
                    rank=data["rank"],
                    name=data["name"],
                    upgrade_threshold=data.get("upgrade_threshold"),
                    retention_threshold=data.get("retention_threshold"),
                )
            )
        problems = programme.tier_ladder_problems(
            group=self.instance, proposed=rungs, removed=removed
        )
        for problem in problems:
            if problem.key in forms_by_key:
                forms_by_key[problem.key].add_error(problem.field, problem.message)
        if problems:
            raise ValidationError([problem.message for problem in problems])


class TierInline(admin.TabularInline):
    """What an operator compares across tiers; colours, gifts and perks are on each tier's page."""

    model = Tier
    form = LiveTierForm
    formset = TierLadderFormSet
    extra = 0
    show_change_link = True
    fields = [
        "rank",
        "name",
        "upgrade_threshold",
        "retention_threshold",
        "discount_percent",
        "points_per_100",
        "free_shipping",
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        width = INLINE_WIDTHS.get(db_field.name)
        if field is not None and width:
            field.widget.attrs["style"] = f"width: {width}"
        return field


# Input widths in the tiers inline, so it fits a 1,366 px screen beside the admin's sidebar.
INLINE_WIDTHS = {
    "rank": "3em",
    "name": "8em",
    "upgrade_threshold": "7em",
    "retention_threshold": "7em",
    "discount_percent": "4em",
    "points_per_100": "3em",
}


@admin.register(VipGroup)
class VipGroupAdmin(
    AuditedConfigMixin, ConfigImportExportMixin, SortableAdminMixin, admin.ModelAdmin
):
    resource_classes = [VipGroupResource]
    list_display = [
        "name",
        "is_default",
        "entry_summary",
        "metric",
        "window",
        "review_period_months",
    ]
    form = VipGroupForm
    inlines = [TierInline]
    filter_horizontal = ["entry_tags"]
    change_form_template = "admin/membership/vipgroup/change_form.html"

    class Media:
        js = ["membership/admin/group_priority.js"]

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        drag_handle = self._reorder_

        def pinned_or_drag_handle(group: VipGroup) -> str:
            # The default group keeps its handle (adminsortable2 reads the last row's order
            # to number a drag) but wherever it is dropped, the list reloads with it last.
            if group.is_default:
                return format_html(
                    '{}<small class="pinned">{}</small>',
                    drag_handle(group),
                    gettext("Always checked last"),
                )
            return drag_handle(group)

        pinned_or_drag_handle.short_description = drag_handle.short_description
        pinned_or_drag_handle.admin_order_field = drag_handle.admin_order_field
        self._reorder_ = pinned_or_drag_handle

    fieldsets = [
        (None, {"fields": ["name", "description", "is_default"]}),
        (
            _("Entry condition"),
            {
                "fields": ["entry_tags", "entry_amount", "entry_requires"],
                "description": _(
                    "Groups are checked from the top of the list down; the first whose "
                    "condition the member meets applies. The default group is checked last."
                ),
            },
        ),
        (_("Tier rule"), {"fields": ["metric", "window", "review_period_months"]}),
        (_("Review warning"), {"fields": ["review_warning_days"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("entry_tags")

    @admin.display(description=_("entry condition"))
    def entry_summary(self, obj: VipGroup) -> str:
        if obj.is_default:
            return _("none (default group)")
        parts = []
        tags = [t.name for t in obj.entry_tags.all()]
        if tags:
            parts.append(_("tag: %s") % " / ".join(tags))
        if obj.entry_amount is not None:
            parts.append(_("spend ≥ NT$%s") % f"{obj.entry_amount:,}")
        joiner = _(" and ") if obj.entry_requires == "both" else _(" or ")
        return joiner.join(str(p) for p in parts) or _("none: nobody enters")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # A new group is numbered after the others, the default group included.
        programme.pin_default_group_last()
        obj.refresh_from_db(fields=["priority"])

    def update_order(self, request):
        """The drag-ordered list's endpoint: through the programme's reorder (checked, audited).

        Replaces adminsortable2's, whose bulk update let PostgreSQL store an out-of-range
        priority as another number and answered a refused one with a broken transaction.
        """
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            return HttpResponseForbidden(gettext("You may not reorder the VIP groups."))
        try:
            items = json.loads(request.body)["updatedItems"]
            priorities = dict(items)
        except (ValueError, KeyError, TypeError):
            return HttpResponseBadRequest(gettext("The new order could not be read."))
        try:
            order = programme.reorder_groups(actor=request.user, priorities=priorities)
        except ValidationError as error:
            return HttpResponseBadRequest(" ".join(error.messages))
        return JsonResponse({"order": order})

    def _bulk_move(self, request, queryset, method):
        # The "move to page" actions, on a list long enough to have pages.
        super()._bulk_move(request, queryset, method)
        programme.pin_default_group_last()

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            for warning in programme_warnings():
                messages.warning(request, warning)
        return super().changelist_view(request, extra_context)


class TierForm(LiveTierForm):
    """A tier's own page: its thresholds checked against the other tiers of its group
    (a new tier's; a saved tier's are the live version's, shown read-only)."""

    def clean(self):
        data = super().clean()
        if data.get("group") is None or data.get("rank") is None or not data.get("name"):
            return data
        rung = programme.Rung(
            key=self.instance.pk or "new",
            rank=data["rank"],
            name=data["name"],
            upgrade_threshold=data.get("upgrade_threshold"),
            retention_threshold=data.get("retention_threshold"),
        )
        for problem in programme.tier_ladder_problems(group=data["group"], proposed=[rung]):
            self.add_error(problem.field, problem.message)
        return data


class TierBenefitInline(SortableTabularInline):
    model = TierBenefit
    extra = 1
    fields = ["text"]


@admin.register(Tier)
class TierAdmin(AuditedConfigMixin, ConfigImportExportMixin, SortableAdminBase, admin.ModelAdmin):
    resource_classes = [TierResource]
    list_display = [
        "name",
        "group",
        "rank",
        "upgrade_threshold",
        "retention_threshold",
        discount_column,
        "points_per_100",
        "free_shipping",
        "upgrade_gift",
    ]
    list_select_related = ["group"]
    list_filter = ["group"]
    form = TierForm
    inlines = [TierBenefitInline]
    fieldsets = [
        (None, {"fields": ["group", "rank", "name", "badge_colour"]}),
        (_("Thresholds"), {"fields": ["upgrade_threshold", "retention_threshold"]}),
        (
            _("Benefits"),
            {
                "fields": [
                    "discount_percent",
                    "points_per_100",
                    "free_shipping",
                    "birthday_perk",
                    "upgrade_gift",
                ]
            },
        ),
    ]


@admin.register(Tag)
class TagAdmin(ConfigImportExportMixin, admin.ModelAdmin):
    resource_classes = [TagResource]
    list_display = ["name", "kind", "description"]
    list_filter = ["kind"]
    search_fields = ["name"]
    readonly_fields = ["kind"]  # a tag made here is an operator's; system tags come from jobs

    # System tags belong to the nightly segment job; operators read them, never edit them.
    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.kind == Tag.Kind.SYSTEM:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.kind == Tag.Kind.SYSTEM:
            return False
        return super().has_delete_permission(request, obj)
