"""Read-side queries for the member's own pages and the tier calculator.

Every page uses a fixed number of queries, however long the member's history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from membership.models import Metric, Nudge, NudgeKind, Order, Tier, TierHistory

from .display import display
from .services.evaluation import Evaluation, evaluate, member_metrics
from .services.nudges import current_nudges
from .services.rules import Metrics, Mode, WindowBounds, load_programme


@dataclass
class Progress:
    next_tier: Tier | None
    needed: int  # NT$ (or orders) still needed for the next tier
    by: dt.date | None  # the day the window closes, where it has one
    metric: str
    percent: int


@dataclass
class Retention:
    tier: Tier
    threshold: int
    needed: int
    review_on: dt.date | None


@dataclass
class Dashboard:
    evaluation: Evaluation
    tiers: list[Tier]
    progress: Progress | None
    retention: Retention | None
    history: list[TierHistory]
    orders: list[Order]
    nudges: list[Nudge]
    version: str  # of the cached programme, for the template's fragment cache


def member_dashboard(member) -> Dashboard:
    """What a member's tier page shows, in a constant number of queries."""
    holder = member.tier_holder if member.tier_holder_id else member
    shown = display()
    ev = evaluate(member, programme=shown.programme)
    bounds = WindowBounds(ev.now)
    group = ev.group
    tiers = shown.tiers.get(group.id, []) if group else []
    current_rank = ev.effective.rank if ev.effective else 0
    following = next((t for t in tiers if t.rank == current_rank + 1), None)
    progress = None
    if following:
        floor = next((t.upgrade_threshold for t in tiers if t.rank == current_rank), 0)
        span = max(following.upgrade_threshold - floor, 1)
        progress = Progress(
            next_tier=following,
            needed=max(following.upgrade_threshold - ev.value, 0),
            by=bounds.closes_on(group.window),
            metric=group.metric,
            percent=min(100, max(0, round(100 * (ev.value - floor) / span))),
        )
    retention = None
    current = next((t for t in tiers if t.rank == current_rank), None)
    if current:
        retention = Retention(
            tier=current,
            threshold=current.retention_threshold,
            needed=max(current.retention_threshold - value_at_review(holder, group), 0),
            review_on=holder.next_review_on,
        )
    history = list(
        TierHistory.objects.filter(member=member)
        .select_related("from_group", "from_tier", "to_group", "to_tier")
        .order_by("-created_at", "-id")[:20]
    )
    orders = list(Order.objects.filter(member=member).order_by("-placed_at", "-id")[:10])
    return Dashboard(
        ev,
        tiers,
        progress,
        retention,
        history,
        orders,
        _live_review_warnings(current_nudges(member, programme=shown.programme), retention),
        shown.version,
    )


def _live_review_warnings(nudges: list[Nudge], retention: Retention | None) -> list[Nudge]:
    """A review warning shows what is still needed now, and goes once nothing is."""
    shown = []
    for nudge in nudges:
        if nudge.kind == NudgeKind.REVIEW_WARNING:
            if retention is None or not retention.needed:
                continue
            nudge.amount = retention.needed
        shown.append(nudge)
    return shown


def value_at_review(holder, group) -> int:
    """What the member's purchases so far will still count for on their review day.

    A rolling or calendar window moves on by then: spend that falls out of it before the
    review keeps nothing, so it is not subtracted from what is still needed.
    """
    if holder.next_review_on is None:
        return 0
    review = timezone.make_aware(dt.datetime.combine(holder.next_review_on, dt.time(12)))
    return member_metrics(holder.pk, WindowBounds(review)).of(group.metric, group.window)


def calculate_tier(member, *, amount: int, on: dt.date, version=None) -> Evaluation:
    """The tier the member would hold after spending ``amount`` on ``on``.

    With ``version`` (a programme version, e.g. a draft): under that version's rules.

    The same rules as the engine: the member's real orders up to that day plus one
    hypothetical paid order, evaluated as an upgrade on that day.
    """
    holder = member.tier_holder if member.tier_holder_id else member
    moment = timezone.make_aware(dt.datetime.combine(on, dt.time(23, 59)))
    bounds = WindowBounds(moment)
    real = member_metrics(holder.pk, bounds)
    values = dict(real.values)
    added = {
        Metric.SPEND: amount,
        Metric.ORDER_COUNT: 1 if amount > 0 else 0,
        Metric.GROWTH_POINTS: _points_for_order(holder, amount, moment),
    }
    for key in list(values):
        values[key] += added[key[0]]
    ev = evaluate(
        holder,
        mode=Mode.UPGRADE,
        programme=load_programme(version.pk if version is not None else None),
        now=moment,
        metrics=Metrics(values=values, last_order_at=moment),
    )
    return ev


def _points_for_order(holder, amount: int, moment: dt.datetime) -> int:
    """The points the hypothetical order would earn at the tier the member holds now."""
    from points.services import order_points  # the points app's stacking rule, written once

    return order_points(amount=amount, tier_id=holder.tier_id, placed_at=moment)
