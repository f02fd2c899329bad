"""Enterprises in the admin. Every save goes through b2b.services (audited, re-evaluated)."""

from django.contrib import admin
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _

from membership.admin.common import ServiceRefusalsAsFormErrors, refusal_of
from membership.admin.exports import ListExportMixin
from membership.admin.members import add_member_inline
from membership.models import Member

from . import services
from .models import Enterprise, Role, SubAccount
from .resources import EnterpriseResource
from .selectors import enterprise_rollup, sub_account_breakdown


class SubAccountInline(admin.TabularInline):
    model = SubAccount
    extra = 1
    autocomplete_fields = ["member"]
    fields = ["member", "role", "added_at"]
    readonly_fields = ["added_at"]


@admin.register(Enterprise)
class EnterpriseAdmin(ServiceRefusalsAsFormErrors, ListExportMixin, admin.ModelAdmin):
    resource_classes = [EnterpriseResource]
    list_display = ["name", "business_id", "master", "master_tier", "contact_name"]
    list_select_related = ["master__tier"]
    search_fields = ["name", "=business_id", "master__name"]
    autocomplete_fields = ["master"]
    inlines = [SubAccountInline]
    readonly_fields = ["rollup"]
    fieldsets = [
        (None, {"fields": ["name", "business_id", "master"]}),
        (
            _("Contact and billing"),
            {
                "fields": [
                    "contact_name",
                    "contact_phone",
                    "contact_email",
                    "billing_title",
                    "billing_address",
                ]
            },
        ),
        (_("Purchases and tier"), {"fields": ["rollup"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # The master is chosen once; moving members happens through sub-accounts.
        return [*self.readonly_fields, "master"] if obj else self.readonly_fields

    @admin.display(description=_("tier"))
    def master_tier(self, obj: Enterprise):
        return obj.master.tier.name if obj.master.tier else "—"

    @admin.display(description=_("roll-up"))
    def rollup(self, obj: Enterprise):
        if obj.pk is None:
            return "—"
        rollup = enterprise_rollup(obj)
        return render_to_string(
            "admin/b2b/enterprise/rollup.html",
            {"rollup": rollup, "lines": sub_account_breakdown(obj, rollup)},
        )

    def save_model(self, request, obj, form, change):
        details = {
            f: form.cleaned_data[f] for f in services.DETAIL_FIELDS if f in form.cleaned_data
        }
        if change:
            services.update_enterprise(enterprise=obj, actor=request.user, **details)
        else:
            created = services.create_enterprise(
                master=form.cleaned_data["master"], actor=request.user, **details
            )
            obj.pk = created.pk
            obj._state.adding = False

    def save_formset(self, request, form, formset, change):
        """Each row through b2b.services; the formset's lists are what the change message reads."""
        enterprise = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for index, sub_form in enumerate(formset.forms):
            with refusal_of(formset, index):
                # The member the row held before this post (the form may have changed it).
                previous = sub_form.initial.get("member")
                if sub_form in formset.deleted_forms:
                    if previous:
                        services.remove_sub_account(
                            member=Member.objects.get(pk=previous), actor=request.user
                        )
                        formset.deleted_objects.append(sub_form.instance)
                    continue
                if not sub_form.has_changed():
                    continue
                data = sub_form.cleaned_data
                if previous and previous != data["member"].pk:
                    # Another member in an existing row: the old one leaves, the new one joins.
                    services.remove_sub_account(
                        member=Member.objects.get(pk=previous), actor=request.user
                    )
                saved = services.add_sub_account(
                    enterprise=enterprise,
                    member=data["member"],
                    role=data["role"],
                    actor=request.user,
                )
                if sub_form.instance.pk:
                    formset.changed_objects.append((saved, sub_form.changed_data))
                else:
                    formset.new_objects.append(saved)


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["name"]


class MemberEnterpriseInline(admin.TabularInline):
    """On the member page: the enterprise a sub-account buys for."""

    model = SubAccount
    fields = ["enterprise", "role", "added_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = _("enterprise")

    def get_queryset(self, request):
        # The enterprise and the role are shown by name: read with the row.
        return super().get_queryset(request).select_related("enterprise", "role")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


add_member_inline(MemberEnterpriseInline)
