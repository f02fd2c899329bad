"""The ledger is read-only for everyone; corrections go through points.services.adjust."""

from django.contrib import admin
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from membership.admin.common import (
    EstimatedCountPaginator,
    ListsPlannedPerValue,
    PlainActionCheckbox,
    QuickListPage,
    ReadOnlyAdmin,
    ReadOnlyInline,
    grouped,
)
from membership.admin.exports import ConfigImportExportMixin, ListExportMixin
from membership.admin.members import add_member_inline

from .models import (
    SOURCE_LABELS,
    STACKING_RULE,
    Account,
    Action,
    BirthdayRule,
    Entry,
    Partner,
    PartnerBonus,
    PartnerTransfer,
    Promotion,
    Referral,
    Reward,
    TierCoefficient,
)
from .resources import (
    AccountResource,
    EntryResource,
    PartnerResource,
    PromotionResource,
    RewardResource,
)


class SourceFilter(admin.SimpleListFilter):
    title = _("source")
    parameter_name = "source"

    def lookups(self, request, model_admin):
        return list(SOURCE_LABELS.items())

    def queryset(self, request, queryset):
        return queryset.filter(source=self.value()) if self.value() else queryset


@admin.register(Entry)
class EntryAdmin(
    ListsPlannedPerValue, QuickListPage, PlainActionCheckbox, ListExportMixin, ReadOnlyAdmin
):
    resource_classes = [EntryResource]
    points_shown = grouped(Entry, "points")
    shortfall_shown = grouped(Entry, "shortfall")
    list_display = [
        "created_at",
        "account",
        "kind",
        "points_shown",
        "shortfall_shown",
        "source_label",
        "source_ref",
    ]
    list_select_related = ["account__member"]
    # What the columns show (QuickListPage); the account as its member's name and balance.
    list_columns = [
        *["created_at", "kind", "points", "shortfall", "source", "source_ref"],
        *["account", "account__balance", "account__member", "account__member__name"],
    ]
    list_filter = ["kind", SourceFilter]
    fields = [
        "created_at",
        "account",
        "kind",
        "points",
        "shortfall",
        "source_label",
        "source_ref",
        "idempotency_key",
        "reason",
    ]
    readonly_fields = fields
    search_fields = ["=idempotency_key", "=account__member__external_id"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # Fifty rows, as the member list: rendering is most of a page's time at any scale.
    list_per_page = 50

    def get_search_results(self, request, queryset, search_term):
        """An entry by its idempotency key, or a member's entries by their external id.

        The member's account is looked up first (by the unique external id), so the list
        is two index scans ORed, not UPPER(col) = UPPER(q) over a join of every entry.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        accounts = list(
            Account.objects.filter(member__external_id=term).values_list("pk", flat=True)
        )
        return queryset.filter(Q(idempotency_key=term) | Q(account_id__in=accounts)), False

    @admin.display(description=_("source"), ordering="source")
    def source_label(self, entry: Entry) -> str:
        return SOURCE_LABELS.get(entry.source, entry.source)


@admin.register(Account)
class AccountAdmin(ListExportMixin, ReadOnlyAdmin):
    resource_classes = [AccountResource]

    def get_urls(self):
        from django.urls import path

        from .admin_views import adjust_points_view

        return [
            path(
                "member/<int:member_id>/adjust/",
                self.admin_site.admin_view(adjust_points_view),
                name="points_member_adjust",
            ),
            *super().get_urls(),
        ]

    balance_shown = grouped(Account, "balance")
    shortfall_shown = grouped(Account, "shortfall")
    list_display = ["member", "balance_shown", "shortfall_shown"]
    list_select_related = ["member"]
    search_fields = ["=member__external_id", "member__name"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(Promotion)
class PromotionAdmin(ConfigImportExportMixin, admin.ModelAdmin):
    resource_classes = [PromotionResource]
    list_display = ["name", "starts_at", "ends_at", "multiplier"]
    fieldsets = [
        (
            None,
            {
                "fields": ["name", "starts_at", "ends_at", "multiplier"],
                "description": STACKING_RULE,
            },
        )
    ]


@admin.register(TierCoefficient)
class TierCoefficientAdmin(admin.ModelAdmin):
    list_display = ["tier", "coefficient"]
    list_select_related = ["tier__group"]
    fieldsets = [(None, {"fields": ["tier", "coefficient"], "description": STACKING_RULE})]


@admin.register(Reward)
class RewardAdmin(ConfigImportExportMixin, admin.ModelAdmin):
    resource_classes = [RewardResource]
    list_display = ["name", "points_cost", "stock", "tier", "months", "active"]
    list_select_related = ["tier__group"]


@admin.register(Action)
class ActionAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "points"]


@admin.register(Referral)
class ReferralAdmin(ReadOnlyAdmin):
    list_display = ["referrer", "friend", "created_at", "rewarded_at"]
    list_select_related = ["referrer", "friend"]


@admin.register(BirthdayRule)
class BirthdayRuleAdmin(admin.ModelAdmin):
    list_display = ["multiplier", "cap", "active"]
    fieldsets = [(None, {"fields": ["multiplier", "cap", "active"], "description": STACKING_RULE})]

    def has_add_permission(self, request) -> bool:
        # One rule: the bonus job reads the active one.
        return super().has_add_permission(request) and not BirthdayRule.objects.exists()


class PartnerBonusInline(admin.TabularInline):
    model = PartnerBonus
    extra = 0


@admin.register(Partner)
class PartnerAdmin(ConfigImportExportMixin, admin.ModelAdmin):
    resource_classes = [PartnerResource]
    list_display = ["name", "code", "rate", "monthly_cap", "min_tier", "active"]
    list_select_related = ["min_tier__group"]
    inlines = [PartnerBonusInline]
    fieldsets = [
        (
            None,
            {
                "fields": ["name", "code", "rate", "monthly_cap", "min_tier", "active"],
                "description": _(
                    "Sending: our points × rate × (1 + the member's VIP bonus), rounded down. "
                    "Receiving: partner points ÷ rate × (1 + VIP bonus), rounded down. The "
                    "monthly cap counts our points both ways."
                ),
            },
        )
    ]


@admin.register(PartnerTransfer)
class PartnerTransferAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "partner", "entry", "partner_points", "bonus_percent"]
    list_select_related = ["partner", "entry__account__member"]
    list_filter = ["partner"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator


class MemberPointsInline(ReadOnlyInline):
    """On the member page: balance, what can be spent now, shortfall and the next expiry."""

    model = Account
    fields = ["balance", "spendable", "shortfall", "next_expiry", "adjust"]
    readonly_fields = fields
    verbose_name_plural = _("points")

    @admin.display(description=_("manual adjustment"))
    def adjust(self, obj: Account):
        from django.urls import reverse
        from django.utils.html import format_html

        url = reverse("admin:points_member_adjust", args=[obj.member_id])
        return format_html('<a href="{}">{}</a>', url, _("Adjust points"))

    @admin.display(description=_("spendable now"))
    def spendable(self, obj: Account) -> int:
        from .services import spendable

        return spendable(obj.member_id)

    @admin.display(description=_("next expiry"))
    def next_expiry(self, obj: Account) -> str:
        from .services import next_expiry

        lot = next_expiry(obj.member_id)
        return f"{lot.remaining} · {timezone.localtime(lot.expires_at):%Y-%m-%d}" if lot else "—"


add_member_inline(MemberPointsInline)
