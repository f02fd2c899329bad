from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from membership.models import Nudge, NudgeOffer
from membership.resources import NudgeResource
from membership.services.nudges import offer_reach
from segments.models import Audience

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
    list_display = ["kind", "audience", "text", "active"]
    list_filter = ["kind", "active"]
    list_select_related = ["audience"]
    fields = ["kind", "audience", "text", "active", "reach"]
    readonly_fields = ["reach"]

    def has_add_permission(self, request) -> bool:
        # Nothing left to add once every kind has its offer for everyone and no audience
        # has been saved to aim another at.
        everyone = NudgeOffer.objects.filter(audience__isnull=True).values("kind").distinct()
        room = everyone.count() < len(NudgeOffer.kind.field.choices)
        aimable = Audience.objects.exists()
        return super().has_add_permission(request) and (room or aimable)

    @admin.display(description=_("this month's nudges it reaches"))
    def reach(self, offer) -> str:
        # A count over the audience's FilterSet: on the change page only, not per list row.
        if offer.pk is None:
            return "—"
        return f"{offer_reach(offer):,}"
