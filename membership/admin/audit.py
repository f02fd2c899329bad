from django.contrib import admin

from membership.models import AuditEntry, GiftIssue, TierHistory
from membership.resources import AuditEntryResource, GiftIssueResource, TierHistoryResource

from .common import EstimatedCountPaginator, ReadOnlyAdmin
from .exports import ListExportMixin


@admin.register(AuditEntry)
class AuditEntryAdmin(ListExportMixin, ReadOnlyAdmin):
    resource_classes = [AuditEntryResource]
    list_display = ["created_at", "actor_name", "action", "object_repr", "reason"]
    list_filter = ["action", "object_type"]
    search_fields = ["object_repr", "actor_name", "reason", "=object_id"]
    fields = [
        "created_at",
        "actor_name",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "before",
        "after",
        "reason",
    ]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


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
