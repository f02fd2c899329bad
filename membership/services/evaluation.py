"""Evaluate one member: find their group and tier, explain why, and apply the change."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from membership.models import (
    Cause,
    GiftIssue,
    Member,
    Metric,
    Order,
    TierGrant,
    TierHistory,
    Window,
)
from membership.sqlrows import columns, instance, update_columns
from membership.sqltime import from_db, to_db

from .history import record_shared_tier_changes, record_tier_change
from .rules import (
    COUNTED_ORDER_SQL,
    GROWTH_POINTS_SQL,
    NET_SPEND_SQL,
    STAMP_SQL,
    GroupCheck,
    GroupRule,
    Metrics,
    Mode,
    Programme,
    TierRule,
    WindowBounds,
    add_months,
    load_programme,
    next_earned_rank,
    resolve_group,
)
from .summary import refresh_member_summaries

# Sharers written per UPDATE when a holder moves (ids as parameters: far below the
# database's limit of 65,535 per statement).
SHARERS_PER_STATEMENT = 5000


def member_metrics(member_id: int, bounds: WindowBounds, *, with_facts: bool = False) -> Metrics:
    """Every metric in every window for one member, in one statement.

    A tier holder's metrics include the orders (and growth points) of the members who
    share its tier. Written as SQL: the member's page runs it on every view, and the ORM
    took longer to build this aggregate than the database to answer it. The programme
    stamp comes with them; ``with_facts`` adds the member's own tags and the tiers of its
    grants active at ``bounds.now`` and whether any member shares its tier (what
    ``evaluate`` and ``evaluate_locked_member`` need besides), in the same statement.
    """
    columns, params = ["MAX(o.placed_at)"], []
    points_columns, points_params = [], []
    for window in Window:
        start = bounds.start(window)
        if start is None:
            columns += [
                f"COALESCE(SUM({NET_SPEND_SQL}), 0)",
                f"COALESCE(SUM(CASE WHEN {COUNTED_ORDER_SQL} THEN 1 ELSE 0 END), 0)",
            ]
            points_columns.append(f"COALESCE(SUM({GROWTH_POINTS_SQL}), 0)")
            continue
        at = to_db(start)
        columns += [
            f"COALESCE(SUM(CASE WHEN o.placed_at >= %s THEN {NET_SPEND_SQL} ELSE 0 END), 0)",
            f"COALESCE(SUM(CASE WHEN o.placed_at >= %s AND {COUNTED_ORDER_SQL} "
            "THEN 1 ELSE 0 END), 0)",
        ]
        params += [at, at]
        points_columns.append(
            f"COALESCE(SUM(CASE WHEN e.created_at >= %s THEN {GROWTH_POINTS_SQL} ELSE 0 END), 0)"
        )
        points_params.append(at)
    accounts = "(SELECT m.id FROM membership_member m WHERE m.id = %s OR m.tier_holder_id = %s)"
    facts, facts_params = "", []
    if with_facts:
        ids = (
            "string_agg(CAST({} AS text), ',')"
            if connection.vendor == "postgresql"
            else "group_concat({}, ',')"
        )
        facts = (
            f", (SELECT {ids.format('mt.tag_id')} FROM membership_membertag mt "
            "WHERE mt.member_id = %s)"
            f", (SELECT {ids.format('gr.tier_id')} FROM membership_tiergrant gr "
            "WHERE gr.member_id = %s AND gr.starts_at <= %s AND gr.ends_at > %s)"
            ", EXISTS (SELECT 1 FROM membership_member s WHERE s.tier_holder_id = %s)"
        )
        now = to_db(bounds.now)
        facts_params = [member_id, member_id, now, now, member_id]
    sql = (
        f"SELECT *, {STAMP_SQL}{facts} FROM "
        f"(SELECT {', '.join(columns)} FROM membership_order o "
        f"WHERE o.status = 'paid' AND o.member_id IN {accounts}) spent "
        f"CROSS JOIN (SELECT {', '.join(points_columns)} FROM points_entry e "
        "JOIN points_account pa ON pa.id = e.account_id "
        f"WHERE pa.member_id IN {accounts}) earned"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [*facts_params, *params, member_id, member_id, *points_params, member_id, member_id],
        )
        row = cursor.fetchone()
    if with_facts:
        *row, tags, grants, has_sharers = row
    last, *totals, stamp = row
    last = from_db(last)
    values = {}
    n = len(Window)
    for i, window in enumerate(Window):
        values[(Metric.SPEND.value, window.value)] = int(totals[2 * i])
        values[(Metric.ORDER_COUNT.value, window.value)] = int(totals[2 * i + 1])
        values[(Metric.GROWTH_POINTS.value, window.value)] = int(totals[2 * n + i])
    return Metrics(
        values=values,
        last_order_at=last,
        programme_stamp=stamp,
        tag_ids=_ids(tags) if with_facts else None,
        grant_tier_ids=_ids(grants) if with_facts else None,
        has_sharers=bool(has_sharers) if with_facts else None,
    )


def _ids(listed: str | None) -> frozenset[int]:
    return frozenset(int(i) for i in listed.split(",")) if listed else frozenset()


@dataclass
class Evaluation:
    """What the rules say about one member at one moment, and why."""

    mode: Mode
    now: dt.datetime
    group: GroupRule | None
    group_changed: bool
    checks: list[GroupCheck]
    locked_until: dt.date | None
    value: int
    window_start: dt.datetime | None
    earned: TierRule | None
    previous_earned: TierRule | None
    effective: TierRule | None
    grant: TierRule | None
    locked: TierRule | None
    inactive: bool
    thresholds: list[dict] = field(default_factory=list)
    shared_from: str | None = None
    # Whether any member shares this one's tier, as read with its metrics (None: unknown).
    has_sharers: bool | None = None

    @property
    def earned_rank(self) -> int:
        return self.earned.rank if self.earned else 0

    def explanation(self) -> dict:
        g = self.group
        return {
            "mode": str(self.mode),
            "evaluated_at": self.now.isoformat(),
            "checks": [c.as_dict() for c in self.checks],
            "locked_until": self.locked_until.isoformat() if self.locked_until else None,
            "group": g.name if g else None,
            "group_changed": self.group_changed,
            "metric": g.metric if g else None,
            "window": g.window if g else None,
            "window_start": timezone.localdate(self.window_start).isoformat()
            if self.window_start
            else None,
            "value": self.value,
            "thresholds": self.thresholds,
            "previous_earned": self.previous_earned.name if self.previous_earned else None,
            "earned": self.earned.name if self.earned else None,
            "grant": self.grant.name if self.grant else None,
            "locked": self.locked.name if self.locked else None,
            "effective": self.effective.name if self.effective else None,
            "inactive": self.inactive,
            "shared_from": self.shared_from,
        }


def evaluate(
    member: Member,
    *,
    mode: Mode = Mode.UPGRADE,
    programme: Programme | None = None,
    now: dt.datetime | None = None,
    metrics: Metrics | None = None,
) -> Evaluation:
    """Apply the rules to ``member`` without writing anything.

    A member who shares another's tier (an enterprise sub-account) is explained
    through the tier holder, whose orders include theirs.
    """
    if member.tier_holder_id:
        holder = Member.objects.get(pk=member.tier_holder_id)
        ev = evaluate(holder, mode=mode, programme=programme, now=now)
        ev.shared_from = holder.name
        return ev
    bounds = WindowBounds(now or timezone.now())
    metrics = metrics or member_metrics(member.pk, bounds, with_facts=True)
    # The stamp came with the metrics: the programme kept under it costs no query.
    programme = programme or load_programme(stamp=metrics.programme_stamp)
    tag_ids = metrics.tag_ids
    if tag_ids is None:
        tag_ids = frozenset(member.member_tags.values_list("tag_id", flat=True))

    lock_active = bool(member.locked_until and member.locked_until >= bounds.today)
    if lock_active:
        # A lock pins the member to the locked tier's group; evaluation goes on inside it.
        group = programme.group_of_tier(member.locked_tier_id)
        checks: list[GroupCheck] = []
    else:
        group, checks = resolve_group(programme, tag_ids, metrics)

    group_changed = group is not None and group.id != member.group_id
    previous_rank = group.rank_of(member.earned_tier_id) if group and not group_changed else 0
    value = metrics.of(group.metric, group.window) if group else 0
    inactive = metrics.last_order_at is None or metrics.last_order_at < bounds.inactivity_cutoff
    earned_rank = (
        next_earned_rank(
            mode=mode,
            group=group,
            group_changed=group_changed,
            current_rank=previous_rank,
            value=value,
            inactive=inactive,
        )
        if group
        else 0
    )
    if not group:
        grant_rank = 0
    elif metrics.grant_tier_ids is not None:
        # A grant of another group's tier ranks 0 in this one, as the query below filters it.
        grant_rank = max((group.rank_of(tid) for tid in metrics.grant_tier_ids), default=0)
    else:
        grant_rank = best_active_grant_rank(member, group, bounds.now)
    lock_rank = group.rank_of(member.locked_tier_id) if group and lock_active else 0
    effective_rank = max(earned_rank, grant_rank, lock_rank)

    def at(rank: int) -> TierRule | None:
        return group.tier_at(rank) if group and rank else None

    return Evaluation(
        mode=mode,
        now=bounds.now,
        group=group,
        group_changed=group_changed,
        checks=checks,
        locked_until=member.locked_until if lock_active else None,
        value=value,
        window_start=bounds.start(group.window) if group else None,
        earned=at(earned_rank),
        previous_earned=at(previous_rank),
        effective=at(effective_rank),
        grant=at(grant_rank),
        locked=at(lock_rank),
        inactive=inactive,
        thresholds=[
            {
                "tier": t.name,
                "rank": t.rank,
                "upgrade": t.upgrade,
                "retention": t.retention,
                "upgrade_met": value >= t.upgrade,
                "retention_met": value >= t.retention,
            }
            for t in (group.tiers if group else ())
        ],
        has_sharers=metrics.has_sharers,
    )


def best_active_grant_rank(member: Member, group: GroupRule, now: dt.datetime) -> int:
    tier_ids = list(
        TierGrant.objects.filter(
            member=member, starts_at__lte=now, ends_at__gt=now, tier__group_id=group.id
        ).values_list("tier_id", flat=True)
    )
    return max((group.rank_of(tid) for tid in tier_ids), default=0)


@dataclass
class EvaluationResult:
    evaluation: Evaluation
    changed: bool
    history: TierHistory | None = None
    gift: GiftIssue | None = None


def evaluate_member(
    *,
    member_id: int,
    mode: Mode = Mode.UPGRADE,
    cause: Cause,
    actor=None,
    order: Order | None = None,
    reason: str = "",
) -> EvaluationResult:
    """Evaluate one member under a row lock and apply the result.

    Idempotent: a second call with nothing new changes nothing and writes nothing.
    Writes a history row when the group or the effective tier changes, issues the
    reached tier's gift at most once, and e-mails the member after commit.
    """
    with transaction.atomic():
        return evaluate_locked_member(
            lock_member(member_id), mode=mode, cause=cause, actor=actor, order=order, reason=reason
        )


def evaluate_locked_member(
    member: Member,
    *,
    mode: Mode = Mode.UPGRADE,
    cause: Cause,
    actor=None,
    order: Order | None = None,
    reason: str = "",
) -> EvaluationResult:
    """``evaluate_member`` for a member the caller has just locked with ``lock_member``
    in its open transaction (an order's recording): no second lock, no savepoint."""
    if member.tier_holder_id:
        # Sharers are evaluated as their holder, and then mirror it.
        return evaluate_member(
            member_id=member.tier_holder_id,
            mode=mode,
            cause=cause,
            actor=actor,
            order=order,
            reason=reason,
        )
    ev = evaluate(member, mode=mode)
    result = apply_evaluation(member, ev, cause=cause, actor=actor, order=order, reason=reason)
    if ev.has_sharers is not False:
        # None share its tier: the metrics were read under the member's lock, and a member
        # starts or stops sharing it only under that lock too (set_master_account).
        sync_sharers(member, cause=cause, actor=actor, now=ev.now)
    # The member holds its own tier (and its sharers'): its review date, locked and just
    # written, is the only one their summaries count to.
    review = member.next_review_on
    refresh_member_summaries(member_ids=[member.pk], review_dates=[review] if review else [])
    return result


def lock_member(member_id: int | None, *, external_id: str | None = None) -> Member:
    """Lock a member's row, after its tier holder's: holders are always locked first.
    The member by id, or by their external id (the shop's) when ``member_id`` is None.

    One statement: PostgreSQL locks the rows in the statement's order (its LockRows runs
    above the sort), so the holder, sorted first, is locked before the member. Written
    as SQL: every order locks its member with it, and the ORM took longer to build this
    statement (an OR, a subquery, a CASE to sort by) than PostgreSQL took to run it. By
    external id, the shop's order needs no look-up of the id first.
    """
    column = "id" if member_id is not None else "external_id"
    key = member_id if member_id is not None else external_id
    with connection.cursor() as cursor:
        cursor.execute(_lock_sql(column), [key, key, key])
        rows = cursor.fetchall()
    at = _column_position(column)
    member = next((instance(Member, row) for row in rows if row[at] == key), None)
    if member is None:
        raise Member.DoesNotExist("No such member.")
    return member


@functools.cache
def _lock_sql(column: str) -> str:
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    # The member sorts after its holder (0 before 1 on both databases; a CASE, as a
    # holder's external id may be NULL, and NULL sorts last).
    return (
        f"SELECT {columns(Member)} FROM membership_member WHERE {column} = %s OR id = "
        f"(SELECT tier_holder_id FROM membership_member WHERE {column} = %s) "
        f"ORDER BY CASE WHEN {column} = %s THEN 1 ELSE 0 END{lock}"
    )


@functools.cache
def _column_position(column: str) -> int:
    return [f.column for f in Member._meta.concrete_fields].index(column)


def sync_sharers(holder: Member, *, cause: Cause, actor=None, now: dt.datetime) -> int:
    """Give every member who shares ``holder``'s tier the holder's group and tiers.

    The caller holds the holder's lock, and refreshes the holder's summaries (which
    include its sharers') afterwards. Gifts go to the holder only. Returns how many
    sharers changed. Set-based: only the sharers behind the holder are read (and locked),
    and they are written a batch at a time, however many they are.
    """
    target = {
        "group_id": holder.group_id,
        "earned_tier_id": holder.earned_tier_id,
        "tier_id": holder.tier_id,
    }
    with connection.cursor() as cursor:
        cursor.execute(
            _moved_sharers_sql(),
            [holder.pk, target["group_id"], target["earned_tier_id"], target["tier_id"]],
        )
        moved = [tuple(row) for row in cursor.fetchall()]
    for start in range(0, len(moved), SHARERS_PER_STATEMENT):
        ids = [pk for pk, _group, _tier in moved[start : start + SHARERS_PER_STATEMENT]]
        Member.objects.filter(pk__in=ids).update(
            **target,
            next_review_on=None,
            tier_since=Case(
                When(~Q(tier_id=holder.tier_id), then=Value(now)),  # NULL-safe in Django
                default=F("tier_since"),
            ),
        )
    record_shared_tier_changes(holder=holder, moved=moved, cause=cause, actor=actor, at=now)
    return len(moved)


@functools.cache
def _moved_sharers_sql() -> str:
    """The sharers of a holder whose group or tiers differ from the holder's, locked in id
    order. Hand-written: every order runs it (nearly always to find none), and the ORM
    took longer to build it than the database takes to answer it through the
    tier-holder index. Ids are above zero, so 0 stands for none on both sides."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return (
        "SELECT id, group_id, tier_id FROM membership_member WHERE tier_holder_id = %s "
        "AND NOT (COALESCE(group_id, 0) = COALESCE(%s, 0) "
        "AND COALESCE(earned_tier_id, 0) = COALESCE(%s, 0) "
        f"AND COALESCE(tier_id, 0) = COALESCE(%s, 0)) ORDER BY id{lock}"
    )


# What an evaluation writes on the member: its standing.
STANDING_FIELDS = (
    "group",
    "earned_tier",
    "tier",
    "tier_since",
    "tier_earned_by_order",
    "next_review_on",
)


def apply_evaluation(
    member: Member,
    ev: Evaluation,
    *,
    cause: Cause,
    actor=None,
    order: Order | None = None,
    reason: str = "",
) -> EvaluationResult:
    """Write an evaluation's outcome. The caller holds the member's row lock and
    refreshes the member's summary afterwards, in the same transaction."""
    new_group_id = ev.group.id if ev.group else None
    new_earned_id = ev.earned.id if ev.earned else None
    new_tier_id = ev.effective.id if ev.effective else None
    old_group_id, old_tier_id = member.group_id, member.tier_id
    if (new_group_id, new_earned_id, new_tier_id) == (
        member.group_id,
        member.earned_tier_id,
        member.tier_id,
    ):
        return EvaluationResult(evaluation=ev, changed=False)

    previous_rank = ev.previous_earned.rank if ev.previous_earned else 0
    rose = ev.earned_rank > previous_rank or (ev.group_changed and ev.earned_rank > 0)
    if new_earned_id != member.earned_tier_id:
        member.tier_earned_by_order = order if (rose and order is not None) else None
        member.next_review_on = (
            _review_date(ev.now, ev.group.review_months) if ev.earned_rank else None
        )
    if new_tier_id != member.tier_id:
        member.tier_since = ev.now
    member.group_id, member.earned_tier_id, member.tier_id = (
        new_group_id,
        new_earned_id,
        new_tier_id,
    )
    update_columns(member, STANDING_FIELDS)

    result = EvaluationResult(evaluation=ev, changed=True)
    if (new_group_id, new_tier_id) != (old_group_id, old_tier_id):
        result.history = record_tier_change(
            member=member,
            from_group_id=old_group_id,
            from_tier_id=old_tier_id,
            cause=cause,
            actor=actor,
            reason=reason,
            explanation=ev.explanation(),
            at=ev.now,
            refresh_summary=False,  # evaluate_locked_member refreshes it once, after the gift
        )
    if rose and ev.earned and ev.earned.gift:
        # Under the member lock; the unique constraint backs it against any other writer.
        result.gift = _issue_gift(member, ev.earned, ev.now)
    return result


def _issue_gift(member: Member, tier: TierRule, now: dt.datetime) -> GiftIssue | None:
    """Give ``tier``'s gift unless the member already has it: the new issue, or None.

    One statement (INSERT … ON CONFLICT DO NOTHING), where get_or_create took four with
    its savepoint; every upgrade with a gift runs it.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO membership_giftissue (member_id, tier_id, gift, issued_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (member_id, tier_id) DO NOTHING RETURNING id",
            [member.pk, tier.id, tier.gift, to_db(now)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    gift = GiftIssue(pk=row[0], member=member, tier_id=tier.id, gift=tier.gift, issued_at=now)
    gift._state.adding = False
    return gift


def _review_date(now: dt.datetime, months: int) -> dt.date:
    return add_months(timezone.localdate(now), months)
