"""Read-side queries for the member's own pages and the tier calculator.

Every page uses a fixed number of queries, however long the member's history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

from django.db import connections, router
from django.db.models.expressions import RawSQL
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone

from membership.models import (
    Cause,
    Member,
    MemberSummary,
    Metric,
    Nudge,
    NudgeKind,
    Order,
    Tier,
    TierHistory,
)

from .display import display
from .portal import panel_columns
from .services.evaluation import Evaluation, evaluate, member_metrics
from .services.nudges import current_nudges, period_of
from .services.rules import GroupRule, Metrics, Mode, TierRule, WindowBounds, load_programme
from .services.summary import RecentOrder, recent_history, recent_orders
from .sqlrows import partial_instance


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
    evaluation: Evaluation | Shown  # afresh, or from the summary row
    tiers: list[Tier]
    progress: Progress | None
    retention: Retention | None
    history: list[TierHistory]
    orders: list[RecentOrder]
    nudges: list[Nudge]
    version: str  # of the cached programme, for the template's fragment cache


def member_dashboard(member) -> Dashboard:
    """What a member's tier page shows, computed afresh in a constant number of queries."""
    holder = member.tier_holder if member.tier_holder_id else member
    shown = display()
    ev = evaluate(member, programme=shown.programme)
    group = ev.group
    tiers = shown.tiers.get(group.id, []) if group else []
    current_rank = ev.effective.rank if ev.effective else 0
    progress, retention = _progress_and_retention(
        group,
        tiers,
        current_rank,
        value=ev.value,
        review_value=lambda: value_at_review(holder, group),
        review_on=holder.next_review_on,
        bounds=WindowBounds(ev.now),
    )
    history = list(
        TierHistory.objects.filter(member=member)
        .select_related("from_group", "from_tier", "to_group", "to_tier")
        .order_by("-created_at", "-id")[:20]
    )
    url_of = order_url()
    orders = [
        RecentOrder(o.pk, o.placed_at, o.amount, o.refunded_amount, url_of(o.pk))
        for o in Order.objects.filter(member=member).order_by("-placed_at", "-id")[:10]
    ]
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


def _progress_and_retention(
    group, tiers, current_rank, *, value, review_value, review_on, bounds
) -> tuple[Progress | None, Retention | None]:
    following = next((t for t in tiers if t.rank == current_rank + 1), None)
    progress = None
    if following:
        floor = next((t.upgrade_threshold for t in tiers if t.rank == current_rank), 0)
        span = max(following.upgrade_threshold - floor, 1)
        progress = Progress(
            next_tier=following,
            needed=max(following.upgrade_threshold - value, 0),
            by=bounds.closes_on(group.window),
            metric=group.metric,
            percent=min(100, max(0, round(100 * (value - floor) / span))),
        )
    retention = None
    current = next((t for t in tiers if t.rank == current_rank), None)
    if current:
        retention = Retention(
            tier=current,
            threshold=current.retention_threshold,
            needed=max(current.retention_threshold - review_value(), 0),
            review_on=review_on,
        )
    return progress, retention


@dataclass
class Shown:
    """What the page's hero shows: the member's recorded group and tier, and the value."""

    group: GroupRule
    effective: TierRule | None
    value: int
    window_start: dt.datetime | None
    shared_from: str | None


@dataclass
class Change:
    """A tier-history line of the page, named from the cached programme."""

    created_at: dt.datetime
    from_group_id: int | None
    to_group_id: int | None
    from_tier: Tier | None
    to_tier: Tier | None
    to_group: GroupRule | None
    cause: str

    def get_cause_display(self) -> str:
        return Cause(self.cause).label


def member_page(member, *, now: dt.datetime | None = None) -> Dashboard:
    """The tier page from the member's summary row, read with the member (no query here
    unless the member has offers this month or a review warning).

    Where the row cannot be read — none yet, past its ``valid_until``, written under
    another metric or window than the group has now, a group ranked by growth points
    (which the row does not keep), or a tier outside the group — the page is computed
    afresh (``member_dashboard``): slower, never stale.
    """
    now = now or timezone.now()
    shown = display()
    try:
        summary = member.summary
    except MemberSummary.DoesNotExist:
        return member_dashboard(member)
    group = shown.programme.group(member.group_id)
    if (
        group is None
        # Growth points are not in the summary (it sums orders): computed afresh.
        or group.metric == Metric.GROWTH_POINTS
        or summary.valid_until <= now
        or (summary.metric, summary.metric_window) != (group.metric, group.window)
    ):
        return member_dashboard(member)
    effective = next((t for t in group.tiers if t.id == member.tier_id), None)
    if member.tier_id and effective is None:
        return member_dashboard(member)
    holder = member.tier_holder if member.tier_holder_id else member
    if summary.review_on != holder.next_review_on:
        return member_dashboard(member)
    bounds = WindowBounds(now)
    tiers = shown.tiers.get(group.id, [])
    progress, retention = _progress_and_retention(
        group,
        tiers,
        effective.rank if effective else 0,
        value=summary.value,
        review_value=lambda: summary.review_value,
        review_on=holder.next_review_on,
        bounds=bounds,
    )
    by_id = {t.id: t for ts in shown.tiers.values() for t in ts}
    history = [
        Change(
            created_at=h.created_at,
            from_group_id=h.from_group_id,
            to_group_id=h.to_group_id,
            from_tier=by_id.get(h.from_tier_id),
            to_tier=by_id.get(h.to_tier_id),
            to_group=shown.programme.group(h.to_group_id),
            cause=h.cause,
        )
        for h in recent_history(summary)
    ]
    has_offers = getattr(member, "has_offers", 1)
    return Dashboard(
        Shown(
            group=group,
            effective=effective,
            value=summary.value,
            window_start=bounds.start(group.window),
            shared_from=member.tier_holder.name if member.tier_holder_id else None,
        ),
        tiers,
        progress,
        retention,
        history,
        recent_orders(summary, order_url()),
        _live_review_warnings(
            current_nudges(member, programme=shown.programme, now=now) if has_offers else [],
            retention,
        ),
        shown.version,
    )


_MEMBER = ("id", "user_id", "name", "group_id", "tier_id", "earned_tier_id", "tier_holder_id")
_MEMBER += ("next_review_on", "last_order_at", "locked_tier_id", "locked_until", "language")
_HOLDER = ("id", "name", "group_id", "tier_id", "next_review_on", "last_order_at")
_SUMMARY = ("member_id", "metric", "metric_window", "value", "review_value", "review_on")
_SUMMARY += ("recent_orders", "recent_history", "computed_at", "valid_until")


def order_url():
    """``pk -> the member's order page``, the route reversed once per process (and script
    prefix): the member pages' routes take no language prefix (config/urls.py)."""
    url = _order_url(get_script_prefix(), get_urlconf())
    return lambda pk: url.replace(_MARKER, str(pk))


_MARKER = "2147483647"


@lru_cache(maxsize=8)
def _order_url(prefix: str, urlconf) -> str:
    return reverse("members:order", args=[int(_MARKER)], urlconf=urlconf)


def page_member(*, user_id: int, now: dt.datetime) -> Member | None:
    """The member of ``user_id`` with their tier holder, summary row and the panels'
    columns, in one hand-written statement: building it with the ORM took longer than
    the database takes to answer it."""
    columns = page_columns(now)
    extra_sql = ", ".join(f"({c.sql}) AS {name}" for name, c in columns.items())
    extra_params = [p for c in columns.values() for p in c.params]
    sql = (
        f"SELECT {', '.join(f'membership_member.{c}' for c in _MEMBER)}, "
        f"{', '.join(f'h.{c}' for c in _HOLDER)}, {', '.join(f's.{c}' for c in _SUMMARY)}, "
        f'{extra_sql} FROM "membership_member" '
        "LEFT JOIN membership_member h ON h.id = membership_member.tier_holder_id "
        "LEFT JOIN membership_membersummary s ON s.member_id = membership_member.id "
        "WHERE membership_member.user_id = %s"
    )
    # The database the router reads members from: the replica, unless this visitor has
    # just changed something (read-your-writes) or a transaction is open.
    alias = router.db_for_read(Member)
    with connections[alias].cursor() as cur:
        cur.execute(sql, [*extra_params, user_id])
        row = cur.fetchone()
    if row is None:
        return None
    values = iter(row)
    member = partial_instance(alias, Member, {c: next(values) for c in _MEMBER})
    holder = {c: next(values) for c in _HOLDER}
    summary = {c: next(values) for c in _SUMMARY}
    for name in columns:
        setattr(member, name, next(values))
    if member.tier_holder_id:
        member.tier_holder = partial_instance(alias, Member, holder)
    if summary["member_id"] is None:
        Member._meta.get_field("summary").set_cached_value(member, None)
    else:
        member.summary = partial_instance(alias, MemberSummary, summary)
    return member


def page_columns(now: dt.datetime) -> dict:
    """Columns of the page's one read of the member: membership's own and the panels'."""
    return {
        # This month's offers, if any (the member's own or their tier holder's), or a
        # review warning, kept under the holder's review date (see ``current_nudges``).
        "has_offers": RawSQL(
            "SELECT 1 FROM membership_nudge n WHERE n.member_id IN "
            "(membership_member.id, membership_member.tier_holder_id) AND (n.period = %s "
            "OR (n.kind = %s AND n.period = (SELECT CAST(x.next_review_on AS TEXT) "
            "FROM membership_member x WHERE x.id = "
            "COALESCE(membership_member.tier_holder_id, membership_member.id)))) LIMIT 1",
            [period_of(now), NudgeKind.REVIEW_WARNING.value],
        ),
        **panel_columns(now),
    }


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
