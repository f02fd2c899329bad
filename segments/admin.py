from django.contrib import admin
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from membership.admin.common import EstimatedCountPaginator, ReadOnlyAdmin

from .models import MemberSegment, SegmentSettings
from .services import BEHAVIOUR_TAGS, CELL_TAGS, CELLS, LIFECYCLE_TAGS


def _high_low(high: bool) -> str:
    return str(_("high") if high else _("low"))


@admin.register(SegmentSettings)
class SegmentSettingsAdmin(admin.ModelAdmin):
    """The boundaries of every segment, with the RFM cells they name, on one page."""

    readonly_fields = ["rfm_cells", "system_tags"]
    fieldsets = [
        (_("RFM"), {"fields": ["rfm_months", "high_score", "rfm_cells"]}),
        (_("Lifecycle"), {"fields": ["new_days", "active_days", "churn_days", "mature_orders"]}),
        (
            _("Behaviour"),
            {
                "fields": [
                    "big_spender_score",
                    "promotion_share",
                    "promotion_min_orders",
                    "loyal_quarters",
                    "loyal_days",
                ]
            },
        ),
        (_("System tags"), {"fields": ["system_tags"]}),
    ]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not SegmentSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("RFM cells"))
    def rfm_cells(self, obj):
        header = format_html_join(
            "", "<th>{}</th>", [(_("R"),), (_("F"),), (_("M"),), (_("cell"),), (_("tag"),)]
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            [
                (_high_low(r), _high_low(f), _high_low(m), cell.label, CELL_TAGS[cell])
                for (r, f, m), cell in CELLS.items()
            ],
        )
        return format_html_join(
            "", "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", [(header, rows)]
        )

    @admin.display(description=_("system tags"))
    def system_tags(self, obj):
        names = [*CELL_TAGS.values(), *LIFECYCLE_TAGS.values(), *BEHAVIOUR_TAGS.values()]
        return "、".join(names)


@admin.register(MemberSegment)
class MemberSegmentAdmin(ReadOnlyAdmin):
    list_display = [
        "member",
        "recency",
        "frequency",
        "monetary",
        "rfm_cell",
        "lifecycle",
        "big_spender",
        "promotion_hunter",
        "loyalist",
        "period_spend",
        "last_order_at",
    ]
    list_filter = ["rfm_cell", "lifecycle", "big_spender", "promotion_hunter", "loyalist"]
    list_select_related = ["member"]
    search_fields = ["member__name", "=member__external_id"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
