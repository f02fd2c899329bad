from django.contrib import admin
from django.contrib.auth import get_user_model
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from membership import audit_display
from membership.models import AuditEntry, GiftIssue, Member, TierHistory
from membership.resources import AuditEntryResource, GiftIssueResource, TierHistoryResource

from .common import EstimatedCountPaginator, ReadOnlyAdmin
from .exports import ListExportMixin


class ActorFilter(admin.SimpleListFilter):
    """Staff who can act (a short list), and the system for automatic changes."""

    title = _("actor")
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        staff = get_user_model().objects.filter(is_staff=True).order_by("username")
        return [(str(user.pk), user.get_username()) for user in staff] + [("system", _("system"))]

    def queryset(self, request, queryset):
        value = self.value() or ""
        if value == "system":
            return queryset.filter(actor__isnull=True)
        if value.isdigit():
            return queryset.filter(actor_id=int(value))
        return queryset


class ActionFilter(admin.SimpleListFilter):
    """Actions by label, from the registry (no scan of the log for distinct values)."""

    title = _("action")
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return [(action, label) for action, label in audit_display.ACTION_LABELS.items()]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


class ObjectTypeFilter(admin.SimpleListFilter):
    title = _("object type")
    parameter_name = "object_type"

    def lookups(self, request, model_admin):
        return [(t, audit_display.object_type_label(t)) for t in audit_display.OBJECT_TYPES]

    def queryset(self, request, queryset):
        return queryset.filter(object_type=self.value()) if self.value() else queryset


class MemberFilter(admin.SimpleListFilter):
    """?member=<id>: one member's entries and their orders' (the member page links here)."""

    title = _("member")
    parameter_name = "member"

    def lookups(self, request, model_admin):
        # Only the member asked for is offered: the filter shows while it is on, and clears.
        value = self.value() or ""
        member = Member.objects.filter(pk=int(value)).first() if value.isdigit() else None
        return [(str(member.pk), str(member))] if member else []

    def queryset(self, request, queryset):
        value = self.value() or ""
        if not value.isdigit():
            return queryset
        members = Member.objects.filter(pk=int(value))
        return queryset.filter(pk__in=audit_display.entries_about_members(members).values("pk"))


@admin.register(AuditEntry)
class AuditEntryAdmin(ListExportMixin, ReadOnlyAdmin):
    """The audit log in words: labels, names instead of ids, times in Asia/Taipei. Read-only."""

    resource_classes = [AuditEntryResource]

    list_display = [
        "when",
        "actor_display",
        "action_label",
        "object_type_label",
        "object_repr",
        "changed_fields",
        "reason",
    ]
    list_display_links = ["when", "action_label"]
    list_filter = [
        ActorFilter,
        ActionFilter,
        ObjectTypeFilter,
        ("created_at", admin.DateFieldListFilter),
        MemberFilter,
    ]
    search_fields = ["object_repr", "actor_name", "reason", "=object_id"]
    search_help_text = _(
        "A member's name, external id, e-mail or phone; or an object, actor or reason."
    )
    fields = [
        "when",
        "actor_display",
        "action_label",
        "object_type_label",
        "object_link",
        "reason",
        "changes",
    ]
    readonly_fields = fields
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def get_search_results(self, request, queryset, search_term):
        results, duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            members = audit_display.members_matching(search_term)
            about = audit_display.entries_about_members(members).values("pk")
            results = results | queryset.filter(pk__in=about)
        return results, duplicates

    def change_view(self, request, object_id, form_url="", extra_context=None):
        entry = self.get_object(request, object_id)
        if entry is not None:
            extra_context = {**(extra_context or {}), "subtitle": str(entry)}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description=_("time"), ordering="created_at")
    def when(self, entry: AuditEntry) -> str:
        return format_html(
            '<span style="white-space:nowrap">{}</span>', audit_display.local_time(entry.created_at)
        )

    @admin.display(description=_("actor"), ordering="actor_name")
    def actor_display(self, entry: AuditEntry) -> str:
        return audit_display.actor_label(entry)

    @admin.display(description=_("action"), ordering="action")
    def action_label(self, entry: AuditEntry) -> str:
        return audit_display.action_label(entry.action)

    @admin.display(description=_("object type"), ordering="object_type")
    def object_type_label(self, entry: AuditEntry) -> str:
        return audit_display.object_type_label(entry.object_type)

    @admin.display(description=_("changed fields"))
    def changed_fields(self, entry: AuditEntry) -> str:
        labels = audit_display.changed_field_labels(entry)
        return "、".join(labels) or "—"

    @admin.display(description=_("object"))
    def object_link(self, entry: AuditEntry):
        url = audit_display.admin_url(entry)
        if url is None:
            return entry.object_repr or "—"
        return format_html('<a href="{}">{}</a>', url, entry.object_repr)

    @admin.display(description=_("changes"))
    def changes(self, entry: AuditEntry):
        readable = audit_display.readable_entry(entry)
        return render_to_string(
            "admin/membership/auditentry/entry_changes.html",
            {
                "rows": readable.rows,
                "show_before": readable.has_before,
                "show_after": readable.has_after,
            },
        )


@admin.register(TierHistory)
class TierHistoryAdmin(ListExportMixin, ReadOnlyAdmin):
    resource_classes = [TierHistoryResource]
    list_display = [
        "created_at",
        "member",
        "from_group",
        "from_tier",
        "to_group",
        "to_tier",
        "cause",
    ]
    list_select_related = ["member", "from_group", "from_tier", "to_group", "to_tier"]
    list_filter = ["cause", "to_group"]
    search_fields = ["=member__external_id", "member__name"]
    raw_id_fields = ["member"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(GiftIssue)
class GiftIssueAdmin(ListExportMixin, ReadOnlyAdmin):
    resource_classes = [GiftIssueResource]
    list_display = ["issued_at", "member", "tier", "gift"]
    list_select_related = ["member", "tier", "tier__group"]
    list_filter = ["tier__group", "tier"]
    search_fields = ["=member__external_id", "member__name"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
