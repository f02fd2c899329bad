from django.contrib import admin

from membership.models import TagHistory

from .common import EstimatedCountPaginator, ReadOnlyAdmin


@admin.register(TagHistory)
class TagHistoryAdmin(ReadOnlyAdmin):
    list_display = ["member", "tag", "entered_at", "left_at"]
    list_select_related = ["member", "tag"]
    list_filter = ["tag"]
    search_fields = ["member__name", "=member__external_id"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
