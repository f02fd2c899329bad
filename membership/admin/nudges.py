from django.contrib import admin

from membership.models import Nudge, NudgeOffer
from membership.resources import NudgeResource

from .common import EstimatedCountPaginator, ReadOnlyAdmin
from .exports import ListExportMixin


@admin.register(Nudge)
class NudgeAdmin(ListExportMixin, ReadOnlyAdmin):
    """Made by the daily job (compute_and_send_nudges), never by hand."""

    resource_classes = [NudgeResource]
    list_display = ["period", "kind", "member", "tier", "amount", "created_at", "sent_at"]
    list_select_related = ["member", "tier__group"]
    list_filter = ["kind", "period"]
    search_fields = ["=member__external_id", "=member__phone"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(NudgeOffer)
class NudgeOfferAdmin(admin.ModelAdmin):
    list_display = ["kind", "text", "active"]

    def has_add_permission(self, request) -> bool:
        # One offer per kind: when every kind has one, there is nothing left to add.
        taken = NudgeOffer.objects.values_list("kind", flat=True).distinct().count()
        return super().has_add_permission(request) and taken < len(NudgeOffer.kind.field.choices)
