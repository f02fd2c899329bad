"""VIP groups (drag-ordered priority), tiers with their benefits, and tags."""

from adminsortable2.admin import SortableAdminBase, SortableAdminMixin, SortableTabularInline
from django.contrib import admin, messages
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from membership.admin.common import discount_column
from membership.models import Tag, Tier, TierBenefit, VipGroup
from membership.services import snapshot
from membership.services.configuration import programme_warnings, record_configuration_change


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


class TierInline(admin.TabularInline):
    model = Tier
    extra = 0
    show_change_link = True
    fields = [
        "rank",
        "name",
        "badge_colour",
        "upgrade_threshold",
        "retention_threshold",
        "discount_percent",
        "points_per_100",
        "free_shipping",
        "upgrade_gift",
    ]


@admin.register(VipGroup)
class VipGroupAdmin(AuditedConfigMixin, SortableAdminMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "is_default",
        "entry_summary",
        "metric",
        "window",
        "review_period_months",
    ]
    inlines = [TierInline]
    filter_horizontal = ["entry_tags"]
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

    def update_order(self, request):
        """Dragging the list is a configuration change like any other: audited."""
        with transaction.atomic():
            before = list(
                VipGroup.objects.order_by("priority", "id").values_list("name", flat=True)
            )
            response = super().update_order(request)
            after = list(VipGroup.objects.order_by("priority", "id").values_list("name", flat=True))
            if response.status_code == 200 and before != after:
                record_configuration_change(
                    actor=request.user,
                    action="vipgroup.reorder",
                    object_type="membership.vipgroup",
                    object_id="*",
                    object_repr=str(_("VIP group priority")),
                    before={"priority": before},
                    after={"priority": after},
                )
        return response

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            for warning in programme_warnings():
                messages.warning(request, warning)
        return super().changelist_view(request, extra_context)


class TierBenefitInline(SortableTabularInline):
    model = TierBenefit
    extra = 1
    fields = ["text"]


@admin.register(Tier)
class TierAdmin(AuditedConfigMixin, SortableAdminBase, admin.ModelAdmin):
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
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "description"]
    list_filter = ["kind"]
    search_fields = ["name"]
