"""The nightly segment job: RFM, lifecycle and behaviour, set-based, chunked by member id.

Three passes, each a few statements per id range (nothing per member in Python):

1. ``aggregate``: each member's orders folded into one ``MemberSegment`` row (first and
   last paid order, orders, refunds, spend and promotion orders in the RFM period,
   active quarters), upserted.
2. ``score``: quintile cut points over everyone who bought in the period (one
   statement a dimension), then every row scored 1–5, named by its RFM cell, given its
   lifecycle stage and its behaviours (the rules below, in SQL).
3. ``tag``: each segment is a system tag; membership's ``sync_system_tag`` makes the
   tag match the rows, with tag history, and re-evaluates members whose group an
   entry tag changes.

Each range is independent and idempotent, so ranges can be shared across workers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from membership.models import Member
from membership.services.rules import add_months
from membership.services.system_tags import ensure_system_tag, sync_system_tag

from .models import Behaviour, Lifecycle, MemberSegment, RfmCell, SegmentSettings

# (R high, F high, M high) → cell. "High" is a score at or above SegmentSettings.high_score.
CELLS = {
    (True, True, True): RfmCell.IMPORTANT_VALUE,
    (False, True, True): RfmCell.IMPORTANT_WIN_BACK,
    (True, False, True): RfmCell.IMPORTANT_DEVELOP,
    (False, False, True): RfmCell.IMPORTANT_RETAIN,
    (True, True, False): RfmCell.POTENTIAL,
    (True, False, False): RfmCell.NEWCOMER,
    (False, True, False): RfmCell.MAINTAIN,
    (False, False, False): RfmCell.LOST,
}

# The system tags' names, as the merchant reads them in the tag lists.
CELL_TAGS = {
    RfmCell.IMPORTANT_VALUE: "RFM：重要價值",
    RfmCell.IMPORTANT_WIN_BACK: "RFM：重要喚回",
    RfmCell.IMPORTANT_DEVELOP: "RFM：重要深耕",
    RfmCell.IMPORTANT_RETAIN: "RFM：重要挽留",
    RfmCell.POTENTIAL: "RFM：潛力",
    RfmCell.NEWCOMER: "RFM：新客",
    RfmCell.MAINTAIN: "RFM：一般維持",
    RfmCell.LOST: "RFM：流失",
}
LIFECYCLE_TAGS = {
    Lifecycle.NEW: "生命週期：新客",
    Lifecycle.GROWING: "生命週期：成長",
    Lifecycle.MATURE: "生命週期：成熟",
    Lifecycle.DECLINING: "生命週期：衰退",
    Lifecycle.CHURNED: "生命週期：流失",
}
BEHAVIOUR_TAGS = {
    Behaviour.BIG_SPENDER: "行為：購物狂熱者",
    Behaviour.PROMOTION_HUNTER: "行為：精打細算型",
    Behaviour.LOYALIST: "行為：品牌忠誠者",
}
CHUNK = 100_000


@dataclass
class SegmentRun:
    members: int = 0
    buyers: int = 0
    tag_changes: int = 0
    cuts: dict[str, list] = field(default_factory=dict)


def current_settings() -> SegmentSettings:
    return SegmentSettings.objects.order_by("pk").first() or SegmentSettings.objects.create()


def id_ranges(chunk: int) -> list[tuple[int, int]]:
    bounds = Member.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    if bounds["lo"] is None:
        return []
    return [(lo, lo + chunk) for lo in range(bounds["lo"], bounds["hi"] + 1, chunk)]


def compute_segments(*, now: dt.datetime | None = None, chunk: int | None = None) -> SegmentRun:
    """Recompute every member's segments and system tags. Idempotent."""
    now = now or timezone.now()
    rules = current_settings()
    ranges = id_ranges(chunk or getattr(settings, "SEGMENTS_CHUNK", CHUNK))
    run = SegmentRun()
    for id_from, id_to in ranges:
        run.members += aggregate_range(id_from=id_from, id_to=id_to, rules=rules, now=now)
    run.cuts = quintile_cuts()
    run.buyers = MemberSegment.objects.filter(period_orders__gt=0).count()
    for id_from, id_to in ranges:
        score_range(id_from=id_from, id_to=id_to, rules=rules, cuts=run.cuts, now=now)
    tags = segment_tags()
    for id_from, id_to in ranges:
        run.tag_changes += tag_range(id_from=id_from, id_to=id_to, tags=tags, now=now)
    return run


def _p(value):
    if isinstance(value, dt.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def _months_before(now: dt.datetime, months: int) -> dt.datetime:
    """Local midnight of the same day ``months`` earlier (the windows of rules.py)."""
    day = add_months(timezone.localdate(now), -months)
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def aggregate_range(*, id_from: int, id_to: int, rules: SegmentSettings, now: dt.datetime) -> int:
    """Fold the range's orders into segment rows (pass 1). Returns the rows written."""
    params = {
        "period_start": _p(_months_before(now, rules.rfm_months)),
        "now": _p(now),
        "id_from": id_from,
        "id_to": id_to,
    }
    for k in range(4):  # the last four 3-month windows, q0 the oldest
        params[f"q{k}"] = _p(_months_before(now, 12 - 3 * k))
    params["q4"] = _p(now + dt.timedelta(microseconds=1))
    paid = "o.status = 'paid'"
    in_period = f"{paid} AND o.placed_at >= %(period_start)s AND o.placed_at <= %(now)s"
    quarter_hits = " + ".join(
        f"(CASE WHEN SUM(CASE WHEN {paid} AND o.placed_at >= %(q{k})s "
        f"AND o.placed_at < %(q{k + 1})s THEN 1 ELSE 0 END) > 0 THEN 1 ELSE 0 END)"
        for k in range(4)
    )
    columns = [
        "member_id",
        "first_order_at",
        "last_order_at",
        "orders_total",
        "orders_paid",
        "orders_returned",
        "period_orders",
        "period_spend",
        "promotion_orders",
        "quarters_active",
        "computed_at",
        "rfm_cell",
        "lifecycle",
        "big_spender",
        "promotion_hunter",
        "loyalist",
    ]
    sql = f"""
        INSERT INTO segments_membersegment ({", ".join(columns)})
        SELECT o.member_id,
               MIN(CASE WHEN {paid} THEN o.placed_at END),
               MAX(CASE WHEN {paid} THEN o.placed_at END),
               COUNT(*),
               SUM(CASE WHEN {paid} THEN 1 ELSE 0 END),
               SUM(CASE WHEN o.status <> 'paid' OR o.refunded_amount > 0 THEN 1 ELSE 0 END),
               SUM(CASE WHEN {in_period} THEN 1 ELSE 0 END),
               SUM(CASE WHEN {in_period} THEN o.amount - o.refunded_amount ELSE 0 END),
               SUM(CASE WHEN {in_period} AND EXISTS (
                       SELECT 1 FROM points_promotion p
                       WHERE o.placed_at >= p.starts_at AND o.placed_at < p.ends_at
                   ) THEN 1 ELSE 0 END),
               {quarter_hits},
               %(now)s, '', '', FALSE, FALSE, FALSE
        FROM membership_order o
        WHERE o.member_id >= %(id_from)s AND o.member_id < %(id_to)s
        GROUP BY o.member_id
        ON CONFLICT (member_id) DO UPDATE SET
        {", ".join(f"{c} = excluded.{c}" for c in columns[1:11])}
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


QUINTILE_COLUMNS = {"r": "last_order_at", "f": "period_orders", "m": "period_spend"}


def quintile_cuts() -> dict[str, list]:
    """The four quintile cut points of R (last order), F and M among the period's buyers.

    A cut is the value at position ⌈N·k/5⌉ in ascending order (percentile_disc); a
    score is 1 + the number of cuts the member's value is above, so ties share a score.
    """
    buyers = "FROM segments_membersegment WHERE period_orders > 0"
    cuts: dict[str, list] = {}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for name, column in QUINTILE_COLUMNS.items():
                cursor.execute(
                    "SELECT percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) "
                    f"WITHIN GROUP (ORDER BY {column}) {buyers}"
                )
                cuts[name] = list(cursor.fetchone()[0] or [])
            return cuts
        cursor.execute(f"SELECT COUNT(*) {buyers}")
        n = cursor.fetchone()[0]
        for name, column in QUINTILE_COLUMNS.items():
            cuts[name] = []
            for k in range(1, 5) if n else ():
                position = -(-n * k // 5)  # ⌈n·k/5⌉
                cursor.execute(
                    f"SELECT {column} {buyers} ORDER BY {column} LIMIT 1 OFFSET %s", [position - 1]
                )
                cuts[name].append(cursor.fetchone()[0])
    return cuts


def score_range(
    *, id_from: int, id_to: int, rules: SegmentSettings, cuts: dict, now: dt.datetime
) -> int:
    """Score, name and stage every segment row in the range (pass 2)."""
    params = {
        "high": rules.high_score,
        "churn": _p(now - dt.timedelta(days=rules.churn_days)),
        "active": _p(now - dt.timedelta(days=rules.active_days)),
        "new": _p(now - dt.timedelta(days=rules.new_days)),
        "loyal": _p(now - dt.timedelta(days=rules.loyal_days)),
        "mature": rules.mature_orders,
        "big": rules.big_spender_score,
        "promo_orders": rules.promotion_min_orders,
        "promo_share": rules.promotion_share,
        "quarters": rules.loyal_quarters,
        "id_from": id_from,
        "id_to": id_to,
    }
    score = {}
    for name, column in QUINTILE_COLUMNS.items():
        values = cuts.get(name) or []
        params.update({f"{name}{k}": _p(v) for k, v in enumerate(values)})
        above = " + ".join(
            f"CASE WHEN {column} > %({name}{k})s THEN 1 ELSE 0 END" for k in range(len(values))
        )
        score[name] = f"(CASE WHEN period_orders > 0 THEN 1 + {above} END)" if values else "NULL"
    cell = " ".join(
        f"WHEN {score['r']} {'>=' if r else '<'} %(high)s "
        f"AND {score['f']} {'>=' if f else '<'} %(high)s "
        f"AND {score['m']} {'>=' if m else '<'} %(high)s THEN '{name.value}'"
        for (r, f, m), name in CELLS.items()
    )
    sql = f"""
        UPDATE segments_membersegment SET
            recency = {score["r"]},
            frequency = {score["f"]},
            monetary = {score["m"]},
            rfm_cell = COALESCE(CASE {cell} END, ''),
            lifecycle = CASE
                WHEN last_order_at IS NULL THEN ''
                WHEN last_order_at < %(churn)s THEN '{Lifecycle.CHURNED.value}'
                WHEN last_order_at < %(active)s THEN '{Lifecycle.DECLINING.value}'
                WHEN first_order_at >= %(new)s THEN '{Lifecycle.NEW.value}'
                WHEN orders_paid >= %(mature)s THEN '{Lifecycle.MATURE.value}'
                ELSE '{Lifecycle.GROWING.value}' END,
            big_spender = COALESCE({score["f"]} >= %(big)s AND {score["m"]} >= %(big)s, FALSE),
            promotion_hunter = (period_orders >= %(promo_orders)s
                                AND promotion_orders * 100 >= %(promo_share)s * period_orders),
            loyalist = (quarters_active >= %(quarters)s AND first_order_at <= %(loyal)s)
        WHERE member_id >= %(id_from)s AND member_id < %(id_to)s
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def segment_tags() -> dict:
    """Every segment's system tag (created on first use) with the condition that selects it."""
    tags = {}
    for cell, name in CELL_TAGS.items():
        tag = ensure_system_tag(name=name, description=str(cell.label))
        tags[tag] = ("rfm_cell = %s", [cell.value])
    for stage, name in LIFECYCLE_TAGS.items():
        tag = ensure_system_tag(name=name, description=str(stage.label))
        tags[tag] = ("lifecycle = %s", [stage.value])
    for behaviour, name in BEHAVIOUR_TAGS.items():
        tag = ensure_system_tag(name=name, description=str(behaviour.label))
        tags[tag] = (f"{behaviour.value} = %s", [True])
    return tags


def tag_range(*, id_from: int, id_to: int, tags: dict, now: dt.datetime) -> int:
    """Make every segment's system tag match the range's rows (pass 3)."""
    changes = 0
    for tag, (condition, values) in tags.items():
        changes += sync_system_tag(
            tag=tag,
            members_sql=(
                "SELECT member_id FROM segments_membersegment "
                f"WHERE {condition} AND member_id >= %s AND member_id < %s"
            ),
            params=[*values, id_from, id_to],
            id_from=id_from,
            id_to=id_to,
            now=now,
        )
    return changes
