"""The nightly segment job: RFM, lifecycle and behaviour, set-based, chunked by member id.

Three steps, a few statements each (nothing per member in Python):

1. ``quintile_cuts``: one statement over the period's orders finds the four quintile
   cut points of R (last order), F (orders) and M (net spend) among its buyers.
2. ``segment_range``, per id range: each member's orders folded into one
   ``MemberSegment`` row — first and last paid order, orders, refunds, spend and
   promotion orders in the period, active quarters — scored 1–5 against the cuts,
   named by its RFM cell, given its lifecycle stage and behaviours, and upserted;
   a row that did not change is not written.
3. ``tag_range``, per id range: each segment is a system tag; one SELECT names every
   (member, tag) pair the rows call for, and membership's ``sync_system_tags`` makes
   the tags match it in one statement each way, with tag history, and re-evaluates
   members whose group an entry tag changes.

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
from membership.services.rules import NET_SPEND_SQL, add_months, local_midnight
from membership.services.system_tags import ensure_system_tag, sync_system_tags
from points.models import Promotion

from .models import Behaviour, Lifecycle, RfmCell, SegmentSettings

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
    run.buyers, run.cuts = quintile_cuts(rules=rules, now=now)
    for id_from, id_to in ranges:
        run.members += segment_range(
            id_from=id_from, id_to=id_to, rules=rules, cuts=run.cuts, now=now
        )
    since = rules.tags_synced_at
    # A night on which no row moved has nothing new to plan for (and nothing to tag).
    fresh = run.members > 0 or since is None
    if fresh:
        _analyze("segments_membersegment")
    tags = segment_tags()
    _analyze("membership_membertag")  # written after the last run's analysis
    for id_from, id_to in ranges:
        run.tag_changes += tag_range(
            id_from=id_from, id_to=id_to, tags=tags, now=now, changed_since=since
        )
    SegmentSettings.objects.filter(pk=rules.pk).update(tags_synced_at=now)
    return run


def _analyze(table: str) -> None:
    """Fresh statistics after a bulk write: without them PostgreSQL plans the next
    statements for the empty table it last saw (nested loops over every row pair)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")


def _p(value):
    if isinstance(value, dt.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def _months_before(now: dt.datetime, months: int) -> dt.datetime:
    """Local midnight of the same day ``months`` earlier (the windows of rules.py)."""
    return local_midnight(add_months(timezone.localdate(now), -months))


PAID = "o.status = 'paid'"
IN_PERIOD = f"{PAID} AND o.placed_at >= %(period_start)s AND o.placed_at <= %(now)s"
QUINTILE_COLUMNS = {"r": "last_order_at", "f": "period_orders", "m": "period_spend"}


def quintile_cuts(*, rules: SegmentSettings, now: dt.datetime) -> tuple[int, dict[str, list]]:
    """How many bought in the period, and the four quintile cuts of R, F and M among them.

    A cut is the value at position ⌈N·k/5⌉ in ascending order (percentile_disc); a
    score is 1 + the number of cuts the member's value is above, so ties share a score.
    """
    params = {"period_start": _p(_months_before(now, rules.rfm_months)), "now": _p(now)}
    buyers = f"""(
        SELECT o.member_id, MAX(o.placed_at) AS last_order_at, COUNT(*) AS period_orders,
               SUM({NET_SPEND_SQL}) AS period_spend
        FROM membership_order o WHERE {IN_PERIOD} GROUP BY o.member_id
    ) b"""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT COUNT(*), "
                + ", ".join(
                    f"percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY {c})"
                    for c in QUINTILE_COLUMNS.values()
                )
                + f" FROM {buyers}",
                params,
            )
            n, *arrays = cursor.fetchone()
            return n, {k: list(a or []) for k, a in zip(QUINTILE_COLUMNS, arrays, strict=True)}
        cursor.execute(f"SELECT COUNT(*) FROM {buyers}", params)
        n = cursor.fetchone()[0]
        cuts: dict[str, list] = {}
        for name, column in QUINTILE_COLUMNS.items():
            cuts[name] = []
            for k in range(1, 5) if n else ():
                position = -(-n * k // 5)  # ⌈n·k/5⌉
                cursor.execute(
                    f"SELECT {column} FROM {buyers} ORDER BY {column} LIMIT 1 OFFSET %(at)s",
                    {**params, "at": position - 1},
                )
                cuts[name].append(cursor.fetchone()[0])
    return n, cuts


COLUMNS = [
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
    "recency",
    "frequency",
    "monetary",
    "rfm_cell",
    "lifecycle",
    "big_spender",
    "promotion_hunter",
    "loyalist",
    "changed_at",
]


def segment_range(
    *, id_from: int, id_to: int, rules: SegmentSettings, cuts: dict, now: dt.datetime
) -> int:
    """Fold, score, name and stage the range's members in one upsert. Returns rows written."""
    params = {
        "period_start": _p(_months_before(now, rules.rfm_months)),
        "now": _p(now),
        "id_from": id_from,
        "id_to": id_to,
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
    }
    for k in range(4):  # the last four 3-month windows, q0 the oldest
        params[f"q{k}"] = _p(_months_before(now, 12 - 3 * k))
    params["q4"] = _p(now + dt.timedelta(microseconds=1))
    # Which of the four windows a paid order falls in; the distinct windows are counted.
    quarter = (
        "CASE "
        + " ".join(f"WHEN o.placed_at >= %(q{k})s THEN {k}" for k in range(3, 0, -1))
        + " ELSE 0 END"
    )
    quarter_hits = (
        f"COUNT(DISTINCT {quarter}) FILTER (WHERE {PAID} "
        "AND o.placed_at >= %(q0)s AND o.placed_at < %(q4)s)"
    )
    # The period's promotion windows (a handful) inlined, rather than a lookup per order.
    windows = Promotion.objects.filter(
        ends_at__gt=_months_before(now, rules.rfm_months), starts_at__lte=now
    ).values_list("starts_at", "ends_at")
    promoted = []
    for k, (starts_at, ends_at) in enumerate(windows):
        params[f"promo{k}_from"], params[f"promo{k}_to"] = _p(starts_at), _p(ends_at)
        promoted.append(f"(o.placed_at >= %(promo{k}_from)s AND o.placed_at < %(promo{k}_to)s)")
    promoted = " OR ".join(promoted) or "1 = 0"
    score = {}
    for name, column in QUINTILE_COLUMNS.items():
        values = cuts.get(name) or []
        params.update({f"{name}{k}": _p(v) for k, v in enumerate(values)})
        above = " + ".join(
            f"CASE WHEN a.{column} > %({name}{k})s THEN 1 ELSE 0 END" for k in range(len(values))
        )
        score[name] = (
            f"CASE WHEN a.period_orders > 0 THEN 1 + {above} END"
            if values
            else "CAST(NULL AS INTEGER)"
        )
    cell = " ".join(
        f"WHEN s.recency {'>=' if r else '<'} %(high)s AND s.frequency {'>=' if f else '<'} "
        f"%(high)s AND s.monetary {'>=' if m else '<'} %(high)s THEN '{name.value}'"
        for (r, f, m), name in CELLS.items()
    )
    same = "IS NOT DISTINCT FROM" if connection.vendor == "postgresql" else "IS"
    unchanged = " AND ".join(
        f"segments_membersegment.{c} {same} excluded.{c}" for c in COLUMNS[1:-1]
    )
    kept = " AND ".join(f"c.{col} {same} n.{col}" for col in COLUMNS[1:-1])
    # Rows that did not move are dropped before the upsert: ON CONFLICT locks (writes)
    # every row it meets, even one its WHERE then leaves alone.
    sql = f"""
        INSERT INTO segments_membersegment ({", ".join(COLUMNS)})
        SELECT n.* FROM (
        SELECT s.member_id, s.first_order_at, s.last_order_at, s.orders_total, s.orders_paid,
               s.orders_returned, s.period_orders, s.period_spend, s.promotion_orders,
               s.quarters_active, s.recency, s.frequency, s.monetary,
               COALESCE(CASE {cell} END, '') AS rfm_cell,
               CASE
                   WHEN s.last_order_at IS NULL THEN ''
                   WHEN s.last_order_at < %(churn)s THEN '{Lifecycle.CHURNED.value}'
                   WHEN s.last_order_at < %(active)s THEN '{Lifecycle.DECLINING.value}'
                   WHEN s.first_order_at >= %(new)s THEN '{Lifecycle.NEW.value}'
                   WHEN s.orders_paid >= %(mature)s THEN '{Lifecycle.MATURE.value}'
                   ELSE '{Lifecycle.GROWING.value}' END AS lifecycle,
               COALESCE(s.frequency >= %(big)s AND s.monetary >= %(big)s, FALSE)
                   AS big_spender,
               (s.period_orders >= %(promo_orders)s
                AND s.promotion_orders * 100 >= %(promo_share)s * s.period_orders)
                   AS promotion_hunter,
               COALESCE(s.quarters_active >= %(quarters)s AND s.first_order_at <= %(loyal)s,
                        FALSE) AS loyalist,
               %(now)s AS changed_at
        FROM (
            SELECT a.*, {score["r"]} AS recency, {score["f"]} AS frequency,
                   {score["m"]} AS monetary
            FROM (
                SELECT o.member_id,
                       MIN(o.placed_at) FILTER (WHERE {PAID}) AS first_order_at,
                       MAX(o.placed_at) FILTER (WHERE {PAID}) AS last_order_at,
                       COUNT(*) AS orders_total,
                       COUNT(*) FILTER (WHERE {PAID}) AS orders_paid,
                       COUNT(*) FILTER (WHERE o.status <> 'paid' OR o.refunded_amount > 0)
                           AS orders_returned,
                       COUNT(*) FILTER (WHERE {IN_PERIOD}) AS period_orders,
                       COALESCE(SUM({NET_SPEND_SQL}) FILTER (WHERE {IN_PERIOD}), 0)
                           AS period_spend,
                       COUNT(*) FILTER (WHERE {IN_PERIOD} AND ({promoted}))
                           AS promotion_orders,
                       {quarter_hits} AS quarters_active
                FROM membership_order o
                WHERE o.member_id >= %(id_from)s AND o.member_id < %(id_to)s
                GROUP BY o.member_id
            ) a
        ) s
        ) n
        LEFT JOIN segments_membersegment c ON c.member_id = n.member_id
            AND c.member_id >= %(id_from)s AND c.member_id < %(id_to)s
        WHERE c.member_id IS NULL OR NOT ({kept})
        ON CONFLICT (member_id) DO UPDATE SET
        {", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])}
        WHERE NOT ({unchanged})
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


def tag_range(
    *,
    id_from: int,
    id_to: int,
    tags: dict,
    now: dt.datetime,
    changed_since: dt.datetime | None = None,
) -> int:
    """Make every segment's system tag match the range's rows (pass 3).

    With ``changed_since`` only members whose row changed after it are looked at: the
    others' tags already match rows that have not moved.
    """
    changed, scope_params = "", []
    if changed_since is not None:
        changed = " AND changed_at > %s"
        scope_params = [_p(changed_since)]
    where = f"s.member_id >= %s AND s.member_id < %s{changed.replace('changed_at', 's.changed_at')}"
    values = [v for _condition, condition_values in tags.values() for v in condition_values]
    if connection.vendor == "postgresql":
        # Each row read once: its tags side by side, one per segment that holds.
        cases = ", ".join(
            f"(CASE WHEN {condition} THEN {tag.pk} END)" for tag, (condition, _v) in tags.items()
        )
        pairs = (
            "SELECT s.member_id, v.tag_id FROM segments_membersegment s "
            f"CROSS JOIN LATERAL (VALUES {cases}) v(tag_id) "
            f"WHERE {where} AND v.tag_id IS NOT NULL"
        )
        params = [*values, id_from, id_to, *scope_params]
    else:
        pairs = " UNION ALL ".join(
            f"SELECT s.member_id, {tag.pk} AS tag_id FROM segments_membersegment s "
            f"WHERE {where} AND {condition}"
            for tag, (condition, _v) in tags.items()
        )
        params = [
            p
            for _condition, condition_values in tags.values()
            for p in (id_from, id_to, *scope_params, *condition_values)
        ]
    scope = (
        "SELECT member_id FROM segments_membersegment "
        f"WHERE member_id >= %s AND member_id < %s{changed}"
    )
    return sync_system_tags(
        tag_ids=[tag.pk for tag in tags],
        pairs_sql=pairs,
        params=params,
        id_from=id_from,
        id_to=id_to,
        now=now,
        scope_sql=scope if changed_since is not None else "",
        scope_params=[id_from, id_to, *scope_params] if changed_since is not None else (),
    )
