"""Members: search, filters, the "why this tier?" panel, tag actions and manual adjustment."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from imports.reading import normalise_phone
from membership import audit_display, services
from membership.admin_views import adjust_tier_view, calculator_view
from membership.models import (
    Cause,
    GiftIssue,
    Member,
    MemberTag,
    Order,
    Tag,
    Tier,
    TierHistory,
)
from membership.resources import MemberResource
from membership.services import privacy
from segments.models import Lifecycle

from .common import (
    EstimatedCountPaginator,
    ListsPlannedPerValue,
    PlainActionCheckbox,
    QuickListPage,
    QuickManagementFormSet,
    ReadOnlyInline,
)
from .exports import ListExportMixin
from .widgets import SecondsSplitDateTime


class TagActionForm(ActionForm):
    tag = forms.ModelChoiceField(Tag.objects.all(), required=False, label=_("Tag"))
    reason = forms.CharField(required=False, label=_("Reason"))


class MemberAdminForm(forms.ModelForm):
    tag_choices = forms.ModelMultipleChoiceField(
        Tag.objects.all(),
        required=False,
        label=_("tags"),
        widget=admin.widgets.FilteredSelectMultiple(_("tags"), is_stacked=False),
    )

    class Meta:
        model = Member
        fields = [
            "name",
            "external_id",
            "phone",
            "email",
            "birthday",
            "language",
            "joined_at",
            "user",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["tag_choices"].initial = list(
                self.instance.member_tags.values_list("tag_id", flat=True)
            )


class TagFilter(admin.SimpleListFilter):
    title = _("tag")
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        return list(Tag.objects.values_list("pk", "name"))

    def queryset(self, request, queryset):
        if self.value():
            # EXISTS, not a join: no duplicate rows and no DISTINCT over a million members.
            return queryset.filter(
                Exists(MemberTag.objects.filter(member=OuterRef("pk"), tag_id=self.value()))
            )
        return queryset


class TierFilter(admin.SimpleListFilter):
    """By tier, through the (group, tier) index: a tier's group is known, so both are given."""

    title = _("tier")
    parameter_name = "tier"

    def lookups(self, request, model_admin):
        return [(t.pk, str(t)) for t in Tier.objects.select_related("group")]

    def queryset(self, request, queryset):
        tier = Tier.objects.filter(pk=self.value()).first() if self.value() else None
        if tier is None:
            return queryset
        return queryset.filter(group_id=tier.group_id, tier_id=tier.pk)


class LifecycleFilter(admin.SimpleListFilter):
    """The member's lifecycle stage as the nightly segment job set it (segments.Lifecycle):
    one definition, the same in this list, the audiences and the dashboard's funnel."""

    title = _("lifecycle")
    parameter_name = "lifecycle"

    def lookups(self, request, model_admin):
        return Lifecycle.choices

    def queryset(self, request, queryset):
        if self.value() in Lifecycle.values:
            return queryset.filter(segment__lifecycle=self.value())
        return queryset


class TierHistoryInline(ReadOnlyInline):
    model = TierHistory
    fk_name = "member"
    fields = [
        "created_at",
        "from_group",
        "from_tier",
        "to_group",
        "to_tier",
        "cause",
        "actor",
        "reason",
    ]
    ordering = ["-created_at", "-id"]
    verbose_name_plural = _("tier history")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("from_group", "from_tier__group", "to_group", "to_tier__group", "actor")
        )


class GiftInline(ReadOnlyInline):
    model = GiftIssue
    fields = ["issued_at", "tier", "gift"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tier__group")


class RowsKnowTheirMember:
    """An inline formset mixin: each form's instance holds the member the page is about
    (Django sets only the id), so showing a row's member reads nothing."""

    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        if self.instance.pk is not None:
            self.fk.set_cached_value(form.instance, self.instance)
        return form


@admin.register(Member)
class MemberAdmin(
    ListsPlannedPerValue, QuickListPage, PlainActionCheckbox, ListExportMixin, admin.ModelAdmin
):
    resource_classes = [MemberResource]
    export_permission = "imports.export_members"
    streamed_export = "members"
    form = MemberAdminForm
    action_form = TagActionForm
    list_display = ["name", "external_id", "phone", "email", "group", "tier_badge", "last_order_at"]
    list_select_related = ["group", "tier"]
    # What the columns show (QuickListPage): the row's name is its checkbox's label too.
    list_columns = [
        *["name", "external_id", "phone", "email", "last_order_at"],
        *["group", "group__name", "tier", "tier__name", "tier__badge_colour"],
    ]
    list_filter = ["group", TierFilter, TagFilter, LifecycleFilter]
    # What is searched, and how, is get_search_results; these name the columns.
    search_fields = ["name", "=phone", "email", "=external_id"]
    search_help_text = _(
        "Name, phone (any format), e-mail or external id. Three characters or more find "
        "names and e-mails containing them; one or two find those starting with them."
    )
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    autocomplete_fields = ["user"]
    actions = ["add_tag_action", "remove_tag_action", "reevaluate_action"]
    # Other apps add their sections of the member page with ``add_member_inline``.
    inlines = [TierHistoryInline, GiftInline]
    # Seconds kept on joined_at: an unchanged form must post back the same moment.
    formfield_overrides = {models.DateTimeField: {"widget": SecondsSplitDateTime}}
    readonly_fields = [
        "group",
        "earned_tier",
        "tier",
        "tier_since",
        "locked_tier",
        "locked_until",
        "next_review_on",
        "last_order_at",
        "why_this_tier",
        "recent_orders",
        "audit_entries",
    ]
    fieldsets = [
        (None, {"fields": ["name", "external_id", "phone", "email", "birthday", "language"]}),
        (_("Account"), {"fields": ["joined_at", "user", "tag_choices"]}),
        (
            _("Group and tier"),
            {
                "fields": [
                    "group",
                    "tier",
                    "earned_tier",
                    "tier_since",
                    "locked_tier",
                    "locked_until",
                    "next_review_on",
                    "why_this_tier",
                ]
            },
        ),
        (_("Orders"), {"fields": ["last_order_at", "recent_orders"]}),
        (_("Audit log"), {"fields": ["audit_entries"], "classes": ["collapse"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": [*MemberAdminForm.Meta.fields, "tag_choices"]})]
        return super().get_fieldsets(request, obj)

    def get_urls(self):
        return [
            path(
                "<int:member_id>/adjust-tier/",
                self.admin_site.admin_view(adjust_tier_view),
                name="membership_member_adjust_tier",
            ),
            path(
                "<int:member_id>/calculator/",
                self.admin_site.admin_view(calculator_view),
                name="membership_member_calculator",
            ),
            *super().get_urls(),
        ]

    def has_adjust_tier_permission(self, request) -> bool:
        return request.user.has_perm("membership.adjust_tier")

    def has_evaluate_permission(self, request) -> bool:
        return request.user.has_perm("membership.evaluate_member")

    def get_object(self, request, object_id, from_field=None):
        """Django's, with the group and each tier read with the member: the page shows
        them by name (a tier's name carries its group's), one query each before."""
        field = Member._meta.pk if from_field is None else Member._meta.get_field(from_field)
        queryset = self.get_queryset(request).select_related(
            "group", "tier__group", "earned_tier__group", "locked_tier__group"
        )
        try:
            return queryset.get(**{field.name: field.to_python(object_id)})
        except (Member.DoesNotExist, ValidationError, ValueError):
            return None

    def get_formsets_with_inlines(self, request, obj=None):
        # Each inline row knows its member already: a row whose name shows the member
        # (a points account's does) would read the member again, once a row.
        for formset_class, inline in super().get_formsets_with_inlines(request, obj):
            mixins = (RowsKnowTheirMember, QuickManagementFormSet)
            yield type(formset_class.__name__, (*mixins, formset_class), {}), inline

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_adjust_tier": self.has_adjust_tier_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_search_results(self, request, queryset, search_term):
        """One query that indexes serve, whatever the operator types.

        A phone as typed (0912-345-678, +886 912 345 678): that phone, or an external id
        spelled so. An e-mail (has "@"), in any case: that e-mail. Anything else: a name
        or e-mail containing it (three characters or more) or starting with it (one or
        two: a trigram needs three), or that external id. Names and e-mails go through
        the trigram indexes, phones and external ids through their own; Django's default
        would OR ``UPPER(col) LIKE '%q%'`` over four columns, which no index serves.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            phone = normalise_phone(term)
        except ValueError:
            phone = None
        if phone:
            return queryset.filter(Q(phone=phone) | Q(external_id=term)), False
        if "@" in term:
            # Case-insensitive equality: imports store lower case, typed e-mails may not be.
            return queryset.filter(email__iexact=term), False
        if len(term) >= 3:
            text = Q(name__icontains=term) | Q(email__icontains=term)
        else:
            text = Q(name__istartswith=term) | Q(email__istartswith=term)
        return queryset.filter(text | Q(external_id=term)), False

    # -- saving goes through the services ----------------------------------

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)
        services.change_member_tags(
            member_id=form.instance.pk,
            replace_with=form.cleaned_data.get("tag_choices") or [],
            actor=request.user,
            reason=str(_("Edited on the member page")),
        )
        if not change:
            # A new member is placed at once, after their tags are in.
            services.evaluate_member(member_id=form.instance.pk, cause=Cause.RECOMPUTE)

    def save_model(self, request, obj, form, change):
        """Write only the fields the operator changed; an unchanged form writes nothing.

        Tags are saved in save_related. Writing only the changed columns also leaves the
        evaluation state (group, tier) to the services that own it.
        """
        changed = [f for f in form.changed_data if f in self._model_fields]
        if not change:
            super().save_model(request, obj, form, change)
            services.record_audit(
                actor=request.user, action="member.add", obj=obj, after=services.snapshot(obj)
            )
            return
        if not changed:
            return
        before = services.snapshot(Member.objects.get(pk=obj.pk), changed)
        obj.save(update_fields=changed)
        services.record_audit(
            actor=request.user,
            action="member.change",
            obj=obj,
            before=before,
            after=services.snapshot(obj, changed),
        )

    def log_change(self, request, obj, message):
        # Django's history would note "No fields changed."; a no-op save writes nothing.
        return super().log_change(request, obj, message) if message else None

    _model_fields = frozenset(f.name for f in Member._meta.concrete_fields if not f.primary_key)

    # -- list columns and panels ------------------------------------------

    @admin.display(description=_("tier"), ordering="tier__rank")
    def tier_badge(self, obj: Member):
        if obj.tier is None:
            return "—"
        return format_html(
            '<span style="background:{};color:#fff;padding:1px 8px;border-radius:8px">{}</span>',
            obj.tier.badge_colour,
            obj.tier.name,
        )

    @admin.display(description=_("Why this tier"))
    def why_this_tier(self, obj: Member):
        if obj.pk is None:
            return "—"
        evaluation = services.evaluate(obj)
        return render_to_string(
            "admin/membership/member/why_this_tier.html",
            {"ev": evaluation.explanation(), "member": obj},
        )

    @admin.display(description=_("Recent orders"))
    def recent_orders(self, obj: Member):
        orders = list(Order.objects.filter(member=obj).order_by("-placed_at")[:20])
        url = reverse("admin:membership_order_changelist") + f"?member__id__exact={obj.pk}"
        return render_to_string(
            "admin/membership/member/recent_orders.html", {"orders": orders, "all_url": url}
        )

    @admin.display(description=_("Audit log"))
    def audit_entries(self, obj: Member):
        """The member's audit entries (and their orders'), in words, newest first."""
        entries = audit_display.entries_about_members(Member.objects.filter(pk=obj.pk))
        url = reverse("admin:membership_auditentry_changelist") + f"?member={obj.pk}"
        return render_to_string(
            "admin/membership/auditentry/member_entries.html",
            {
                "entries": audit_display.readable_entries(
                    entries.order_by("-created_at", "-id")[:20]
                ),
                "all_url": url,
            },
        )

    # -- actions ----------------------------------------------------------

    def _tag_action(self, request, queryset, *, add: bool):
        tag = Tag.objects.filter(pk=request.POST.get("tag")).first()
        if tag is None:
            self.message_user(request, _("Choose a tag first."), messages.ERROR)
            return
        changed, result = services.change_tag_for_members(
            member_ids=queryset.values_list("pk", flat=True),
            tag=tag,
            add=add,
            actor=request.user,
            reason=request.POST.get("reason", ""),
        )
        self.message_user(
            request,
            _("Tag %(tag)s updated on %(n)d members; %(moved)d changed group or tier.")
            % {"tag": tag.name, "n": changed, "moved": result.history_rows},
        )

    @admin.action(description=_("Add the chosen tag"), permissions=["change"])
    def add_tag_action(self, request, queryset):
        self._tag_action(request, queryset, add=True)

    @admin.action(description=_("Remove the chosen tag"), permissions=["change"])
    def remove_tag_action(self, request, queryset):
        self._tag_action(request, queryset, add=False)

    @admin.action(description=_("Re-evaluate tiers"), permissions=["evaluate"])
    def reevaluate_action(self, request, queryset):
        result = services.recompute_members(
            member_ids=list(queryset.values_list("pk", flat=True)), actor=request.user
        )
        self.message_user(
            request,
            _("%(n)d members changed group or tier.") % {"n": result.history_rows},
        )

    # -- the member's data rights (PDPA): export and erasure, in membership.services.privacy

    actions = [*actions, "export_personal_data_action", "erase_personal_data_action"]

    def _one_member(self, request, queryset) -> Member | None:
        if queryset.count() != 1:
            self.message_user(request, _("Choose exactly one member."), messages.ERROR)
            return None
        return queryset.get()

    @admin.action(description=_("Export personal data (PDPA request)"), permissions=["view"])
    def export_personal_data_action(self, request, queryset):
        member = self._one_member(request, queryset)
        if member is None:
            return None
        export = privacy.export_member_data(
            member_id=member.pk, actor=request.user, reason=request.POST.get("reason", "")
        )
        response = HttpResponse(export.content, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response

    # A member is never deleted (their orders, ledger and history stay whole): the right to
    # be forgotten is this erasure, for staff who hold the delete permission.
    def has_delete_permission(self, request, obj=None):
        return False

    def has_erase_permission(self, request):
        return request.user.has_perm("membership.delete_member")

    @admin.action(description=_("Erase personal data (PDPA request)"), permissions=["erase"])
    def erase_personal_data_action(self, request, queryset):
        member = self._one_member(request, queryset)
        if member is None:
            return None
        reason = request.POST.get("reason", "")
        if request.POST.get("post") == "yes":
            try:
                privacy.erase_member(member_id=member.pk, actor=request.user, reason=reason)
            except ValidationError as error:
                return self._erase_confirmation(request, member, reason, error.messages[0])
            self.message_user(request, _("The member's personal data was erased."))
            return None
        return self._erase_confirmation(request, member, reason, "")

    def _erase_confirmation(self, request, member, reason, error):
        return TemplateResponse(
            request,
            "admin/membership/member/erase_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "member": member,
                "reason": reason,
                "error": error,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "title": _("Erase personal data"),
            },
        )


def add_member_inline(inline: type[admin.options.InlineModelAdmin]) -> None:
    """The hook for other apps' sections of the member page (points, subscriptions,
    enterprise): appended after membership's own, in the order the apps load."""
    MemberAdmin.inlines = [*MemberAdmin.inlines, inline]
