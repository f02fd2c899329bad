"""KPIs per VIP group and tier, kept as daily snapshots that the dashboard reads.

A snapshot "as of" a moment counts, per group and tier: members, buyers in the last
12 months, repeat buyers (two or more orders), active members (an order in the last
90 days), net spend in 12 months and all time, points outstanding, and the upgrades
and downgrades into the tier since the start of the month. Today's snapshot places
members by their current group and tier; a backfilled one (the last twelve
month-ends, on the first run) places them by their last tier-history row before the
moment. Each is one INSERT … SELECT; nothing per member in Python.

Definitions shown on the dashboard:
- average spend: net spend in the last 12 months ÷ members;
- repurchase rate: repeat buyers ÷ buyers;
- active share: active members ÷ members;
- customer lifetime value (historic): all-time net spend ÷ members, i.e. what a member
  of the tier has been worth to the shop so far.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.db.models import Count, Min
from django.utils import timezone

from membership.models import TierHistory
from membership.services.rules import NET_SPEND_SQL, add_months, local_midnight

from .models import Lifecycle, MemberSegment, SegmentSnapshot, TierSnapshot

ACTIVE_DAYS = 90
SMALL_GROUP_SHARE = 5  # % of members: seed 000 says such a group should be reconsidered

CURRENT = """
    SELECT m.id AS member_id, m.group_id, m.tier_id
    FROM membership_member m
    WHERE m.joined_at < %(moment)s
"""
FROM_HISTORY = """
    SELECT h.member_id, h.to_group_id AS group_id, h.to_tier_id AS tier_id
    FROM membership_tierhistory h
    WHERE h.id IN (
        SELECT MAX(id) FROM membership_tierhistory WHERE created_at < %(moment)s GROUP BY member_id
    )
"""


def _p(value):
    if isinstance(value, dt.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, dt.date):
        return connection.ops.adapt_datefield_value(value)
    return value


def snapshot_tiers(*, day: dt.date, moment: dt.datetime, from_history: bool = False) -> int:
    """Write (or rewrite) the day's tier snapshot as of ``moment``. Returns its rows."""
    params = {
        "day": _p(day),
        "moment": _p(moment),
        "year_start": _p(local_midnight(add_months(timezone.localdate(moment), -12))),
        "active_start": _p(moment - dt.timedelta(days=ACTIVE_DAYS)),
        # The moves of the snapshot day's month: a month-end's snapshot is taken as of the
        # next midnight, already in the next month, and must still count its own month.
        "month_start": _p(local_midnight(day.replace(day=1))),
    }
    sql = f"""
        WITH placed AS ({FROM_HISTORY if from_history else CURRENT}),
        bought AS (
            SELECT o.member_id,
                   SUM(CASE WHEN o.placed_at >= %(year_start)s
                            THEN {NET_SPEND_SQL} ELSE 0 END) AS spend,
                   SUM(CASE WHEN o.placed_at >= %(year_start)s THEN 1 ELSE 0 END) AS orders,
                   MAX(o.placed_at) AS last_at,
                   SUM({NET_SPEND_SQL}) AS lifetime
            FROM membership_order o
            WHERE o.status = 'paid' AND o.placed_at < %(moment)s
            GROUP BY o.member_id
        ),
        points AS (
            SELECT a.member_id, SUM(e.points) AS balance
            FROM points_entry e JOIN points_account a ON a.id = e.account_id
            WHERE e.created_at < %(moment)s
            GROUP BY a.member_id
        ),
        moves AS (
            SELECT h.to_group_id AS group_id, h.to_tier_id AS tier_id,
                   SUM(CASE WHEN h.from_group_id = h.to_group_id AND ft.rank < tt.rank
                            THEN 1 ELSE 0 END) AS upgrades,
                   SUM(CASE WHEN h.from_group_id = h.to_group_id AND ft.rank > tt.rank
                            THEN 1 ELSE 0 END) AS downgrades
            FROM membership_tierhistory h
            JOIN membership_tier tt ON tt.id = h.to_tier_id
            JOIN membership_tier ft ON ft.id = h.from_tier_id
            WHERE h.created_at >= %(month_start)s AND h.created_at < %(moment)s
            GROUP BY h.to_group_id, h.to_tier_id
        ),
        figures AS (
            SELECT p.group_id, p.tier_id,
                   COUNT(*) AS members,
                   SUM(CASE WHEN b.orders > 0 THEN 1 ELSE 0 END) AS buyers,
                   SUM(CASE WHEN b.orders > 1 THEN 1 ELSE 0 END) AS repeat_buyers,
                   SUM(CASE WHEN b.last_at >= %(active_start)s THEN 1 ELSE 0 END) AS active,
                   COALESCE(SUM(b.spend), 0) AS spend,
                   COALESCE(SUM(b.lifetime), 0) AS lifetime_spend,
                   COALESCE(SUM(pt.balance), 0) AS points
            FROM placed p
            LEFT JOIN bought b ON b.member_id = p.member_id
            LEFT JOIN points pt ON pt.member_id = p.member_id
            GROUP BY p.group_id, p.tier_id
        )
        INSERT INTO segments_tiersnapshot (day, group_id, tier_id, members, buyers,
            repeat_buyers, active, spend, lifetime_spend, points, upgrades, downgrades)
        SELECT %(day)s, f.group_id, f.tier_id, f.members, f.buyers, f.repeat_buyers, f.active,
               f.spend, f.lifetime_spend, f.points,
               COALESCE(mv.upgrades, 0), COALESCE(mv.downgrades, 0)
        FROM figures f
        LEFT JOIN moves mv ON mv.tier_id = f.tier_id AND mv.group_id = f.group_id
    """
    with transaction.atomic(), connection.cursor() as cursor:
        TierSnapshot.objects.filter(day=day).delete()
        cursor.execute(sql, params)
        return cursor.rowcount


def snapshot_segments(*, day: dt.date) -> SegmentSnapshot:
    """Today's RFM grid (R × F counts) and lifecycle funnel, from the segment rows."""
    grid = {
        f"{row['recency']}{row['frequency']}": row["n"]
        for row in MemberSegment.objects.filter(recency__isnull=False)
        .values("recency", "frequency")
        .annotate(n=Count("pk"))
        .order_by()
    }
    stages = {
        row["lifecycle"]: row["n"]
        for row in MemberSegment.objects.exclude(lifecycle="")
        .values("lifecycle")
        .annotate(n=Count("pk"))
        .order_by()
    }
    snapshot, _created = SegmentSnapshot.objects.update_or_create(
        day=day,
        defaults={
            "rfm_grid": grid,
            "lifecycle": {stage.value: stages.get(stage.value, 0) for stage in Lifecycle},
        },
    )
    return snapshot


def month_ends(*, before: dt.date, months: int = 12) -> list[dt.date]:
    """The last days of the ``months`` whole months before ``before``'s month, oldest first."""
    first = before.replace(day=1)
    return [add_months(first, -k) - dt.timedelta(days=1) for k in range(months - 1, -1, -1)]


def take_snapshots(*, now: dt.datetime | None = None) -> int:
    """The nightly KPI job: today's snapshots; on the first run, twelve month-ends too."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    rows = 0
    if not TierSnapshot.objects.exclude(day=today).exists():
        # A month that ended before the first tier-history row has nobody placed in it:
        # its snapshot would be empty, and the backfill would come back for it every night.
        first = TierHistory.objects.aggregate(at=Min("created_at"))["at"]
        for day in month_ends(before=today):
            moment = local_midnight(day + dt.timedelta(days=1))
            if first is not None and first < moment:
                rows += snapshot_tiers(day=day, moment=moment, from_history=True)
    rows += snapshot_tiers(day=today, moment=now)
    snapshot_segments(day=today)
    return rows
