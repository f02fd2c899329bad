"""One FilterSet for "which members": the audience builder, its exports and the shop's API.

Every filter is a queryset condition on members, so a saved audience is its query
string and always answers with today's members.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Count, Exists, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import dates, timezone
from django.utils.translation import gettext_lazy as _

from b2b.models import Enterprise
from membership.models import Member, Order, Tag, Tier, VipGroup, Window
from membership.services.rules import WindowBounds, local_midnight, net_spend
from subscriptions.models import Plan, Subscription

from .models import Lifecycle, RfmCell

SCORES = [(n, str(n)) for n in range(1, 6)]
MONTHS = list(dates.MONTHS.items())
LIVE_STATES = [
    Subscription.State.ACTIVE,
    Subscription.State.PAST_DUE,
    Subscription.State.CANCELLING,
]


class MemberFilter(django_filters.FilterSet):
    group = django_filters.ModelChoiceFilter(
        label=_("VIP group"), queryset=VipGroup.objects.order_by("priority")
    )
    tier = django_filters.ModelChoiceFilter(
        label=_("tier"), queryset=Tier.objects.select_related("group").order_by("group", "rank")
    )
    tags_any = django_filters.ModelMultipleChoiceFilter(
        label=_("has any of these tags"), queryset=Tag.objects.all(), method="filter_tags_any"
    )
    tags_all = django_filters.ModelMultipleChoiceFilter(
        label=_("has all of these tags"), queryset=Tag.objects.all(), method="filter_tags_all"
    )
    tags_none = django_filters.ModelMultipleChoiceFilter(
        label=_("has none of these tags"), queryset=Tag.objects.all(), method="filter_tags_none"
    )
    window = django_filters.ChoiceFilter(
        label=_("spend and orders counted over"),
        choices=Window.choices,
        empty_label=None,
        method="filter_window",
    )
    spend_min = django_filters.NumberFilter(
        label=_("spend at least (NT$)"), method="filter_spend_min", min_value=0
    )
    spend_max = django_filters.NumberFilter(
        label=_("spend at most (NT$)"), method="filter_spend_max", min_value=0
    )
    orders_min = django_filters.NumberFilter(
        label=_("orders at least"), method="filter_orders_min", min_value=0
    )
    orders_max = django_filters.NumberFilter(
        label=_("orders at most"), method="filter_orders_max", min_value=0
    )
    last_order_after = django_filters.DateFilter(
        label=_("last order on or after"), method="filter_last_order_after"
    )
    last_order_before = django_filters.DateFilter(
        label=_("last order before"), method="filter_last_order_before"
    )
    recency = django_filters.MultipleChoiceFilter(
        label=_("R score"),
        widget=forms.CheckboxSelectMultiple,
        field_name="segment__recency",
        choices=SCORES,
    )
    frequency = django_filters.MultipleChoiceFilter(
        label=_("F score"),
        widget=forms.CheckboxSelectMultiple,
        field_name="segment__frequency",
        choices=SCORES,
    )
    monetary = django_filters.MultipleChoiceFilter(
        label=_("M score"),
        widget=forms.CheckboxSelectMultiple,
        field_name="segment__monetary",
        choices=SCORES,
    )
    rfm_cell = django_filters.MultipleChoiceFilter(
        label=_("RFM cell"),
        widget=forms.CheckboxSelectMultiple,
        field_name="segment__rfm_cell",
        choices=RfmCell.choices,
    )
    lifecycle = django_filters.MultipleChoiceFilter(
        label=_("lifecycle stage"),
        widget=forms.CheckboxSelectMultiple,
        field_name="segment__lifecycle",
        choices=Lifecycle.choices,
    )
    birthday_month = django_filters.ChoiceFilter(
        label=_("birthday month"), field_name="birthday__month", choices=MONTHS
    )
    enterprise = django_filters.ModelChoiceFilter(
        label=_("enterprise"), queryset=Enterprise.objects.all(), method="filter_enterprise"
    )
    points_min = django_filters.NumberFilter(
        label=_("points balance at least"),
        field_name="points_account__balance",
        lookup_expr="gte",
        min_value=0,
    )
    points_max = django_filters.NumberFilter(
        label=_("points balance at most"),
        field_name="points_account__balance",
        lookup_expr="lte",
        min_value=0,
    )
    plan = django_filters.ModelChoiceFilter(
        label=_("paid plan"), queryset=Plan.objects.all(), method="filter_plan"
    )

    class Meta:
        model = Member
        fields: list[str] = []

    # Bounds on spend or order count need the window; they annotate it once.
    def _window_values(self, queryset):
        if "window_spend" in queryset.query.annotations:
            return queryset
        window = self.form.cleaned_data.get("window") or Window.ROLLING_12_MONTHS
        start = WindowBounds(timezone.now()).start(window)
        orders = Order.objects.filter(member=OuterRef("pk"), status=Order.Status.PAID)
        if start is not None:
            orders = orders.filter(placed_at__gte=start)
        totals = orders.order_by().values("member")
        return queryset.annotate(
            window_spend=Coalesce(
                Subquery(totals.annotate(s=Sum(net_spend())).values("s")),
                0,
            ),
            window_orders=Coalesce(Subquery(totals.annotate(n=Count("pk")).values("n")), 0),
        )

    def filter_window(self, queryset, name, value):
        return queryset  # read by the spend and order bounds

    def filter_spend_min(self, queryset, name, value):
        return self._window_values(queryset).filter(window_spend__gte=value)

    def filter_spend_max(self, queryset, name, value):
        return self._window_values(queryset).filter(window_spend__lte=value)

    def filter_orders_min(self, queryset, name, value):
        return self._window_values(queryset).filter(window_orders__gte=value)

    def filter_orders_max(self, queryset, name, value):
        return self._window_values(queryset).filter(window_orders__lte=value)

    def filter_tags_any(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.filter(
            Exists(Member.tags.through.objects.filter(member=OuterRef("pk"), tag__in=value))
        )

    def filter_tags_all(self, queryset, name, value):
        for tag in value:
            queryset = queryset.filter(
                Exists(Member.tags.through.objects.filter(member=OuterRef("pk"), tag=tag))
            )
        return queryset

    def filter_tags_none(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.exclude(
            Exists(Member.tags.through.objects.filter(member=OuterRef("pk"), tag__in=value))
        )

    def filter_last_order_after(self, queryset, name, value):
        return queryset.filter(last_order_at__gte=local_midnight(value))

    def filter_last_order_before(self, queryset, name, value):
        return queryset.filter(last_order_at__lt=local_midnight(value))

    def filter_enterprise(self, queryset, name, value):
        return queryset.filter(Q(enterprise_mastered=value) | Q(sub_account__enterprise=value))

    def filter_plan(self, queryset, name, value):
        return queryset.filter(
            Exists(
                Subscription.objects.filter(
                    member=OuterRef("pk"), plan=value, state__in=LIVE_STATES
                )
            )
        )


def members_for(query: dict) -> tuple[MemberFilter, object]:
    """The FilterSet bound to a query and its queryset (the members it selects today)."""
    filterset = MemberFilter(query, queryset=Member.objects.all())
    return filterset, filterset.qs if filterset.is_valid() else Member.objects.none()
