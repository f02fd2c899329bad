"""Read-side of enterprises: the roll-up and the per-sub-account breakdown."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from membership.models import Order
from membership.services import evaluate
from membership.services.evaluation import Evaluation
from membership.services.rules import counted_order, net_spend

from .models import Enterprise


@dataclass
class Rollup:
    evaluation: Evaluation
    total: int
    next_tier: str | None
    gap: int | None


@dataclass
class SubAccountLine:
    member_id: int
    name: str
    role: str
    spend: int
    orders: int


def enterprise_rollup(enterprise: Enterprise) -> Rollup:
    """The enterprise's purchases in its group's window, its tier and the gap to the next."""
    ev = evaluate(enterprise.master)
    rank = ev.effective.rank if ev.effective else 0
    following = ev.group.tier_at(rank + 1) if ev.group else None
    return Rollup(
        evaluation=ev,
        total=ev.value,
        next_tier=following.name if following else None,
        gap=max(following.upgrade - ev.value, 0) if following else None,
    )


def sub_account_breakdown(enterprise: Enterprise, rollup: Rollup) -> list[SubAccountLine]:
    """Each account's own spend and orders in the same window, in one query."""
    start = rollup.evaluation.window_start
    in_window = Q(orders__status=Order.Status.PAID) & (
        Q(orders__placed_at__gte=start) if start else Q()
    )
    net = net_spend("orders__")
    accounts = [(enterprise.master, str(_("master account")))] + [
        (s.member, s.role.name) for s in enterprise.sub_accounts.select_related("member", "role")
    ]
    totals = {
        row["pk"]: row
        for row in type(enterprise.master)
        .objects.filter(pk__in=[m.pk for m, _ in accounts])
        .values("pk")
        .annotate(
            spend=Coalesce(Sum(net, filter=in_window), 0),
            orders=Count("orders", filter=in_window & counted_order("orders__")),
        )
    }
    return [
        SubAccountLine(
            member_id=m.pk,
            name=m.name,
            role=role,
            spend=int(totals[m.pk]["spend"]),
            orders=totals[m.pk]["orders"],
        )
        for m, role in accounts
    ]
