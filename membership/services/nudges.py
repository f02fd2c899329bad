"""Predictive nudges (DESIGN.md): set-based, at most one of a kind per member a month.

| kind             | who                                                     | payload        |
| about to upgrade | spend group, within NT$500 of the next tier's threshold | next tier, gap |
| stalled          | base tier, has bought, nothing for 3 months             | next tier, gap |
| downgrade risk   | above the base tier, nothing bought for 60 days         | tier, gap to   |
|                  |                                                         | its retention  |

Each kind is one INSERT … SELECT per group over the group's members and their
window's orders (a sub-account's orders count for its tier holder); the unique
(member, kind, period) constraint makes a second run add nothing.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone

from api.webhooks import events as webhooks
from membership.models import Member, Metric, Nudge, NudgeKind, NudgeOffer
from membership.sqltime import to_db

from .notifications import email_member
from .rules import COUNTED_ORDER_SQL, NET_SPEND_SQL, WindowBounds, load_programme

UPGRADE_MARGIN = 500  # NT$
STALLED_AFTER = dt.timedelta(days=90)
AT_RISK_AFTER = dt.timedelta(days=60)
BATCH = 500


def period_of(now: dt.datetime) -> str:
    return f"{timezone.localdate(now):%Y-%m}"


def _values(group_id: int, metric: str, start) -> tuple[str, list]:
    """Each tier holder's qualifying value in the window: SUM(net NT$) or paid orders."""
    value = (
        f"SUM({NET_SPEND_SQL})"
        if metric == Metric.SPEND
        else f"SUM(CASE WHEN {COUNTED_ORDER_SQL} THEN 1 ELSE 0 END)"
    )
    where, params = "o.status = 'paid' AND om.group_id = %s", [group_id]
    if start is not None:
        where += " AND o.placed_at >= %s"
        params.append(to_db(start))
    sql = (
        f"SELECT COALESCE(om.tier_holder_id, om.id) AS holder, {value} AS value "
        "FROM membership_order o JOIN membership_member om ON om.id = o.member_id "
        f"WHERE {where} GROUP BY COALESCE(om.tier_holder_id, om.id)"
    )
    return sql, params


INSERT = (
    "INSERT INTO membership_nudge (member_id, kind, period, tier_id, amount, created_at) "
    "SELECT m.id, %s, %s, {tier}.id, {amount}, %s "
    "FROM membership_member m JOIN membership_tier t ON t.id = m.earned_tier_id "
    "{next_join} LEFT JOIN ({values}) s ON s.holder = m.id "
    "WHERE m.group_id = %s AND m.tier_holder_id IS NULL AND {condition} "
    "ON CONFLICT (member_id, kind, period) DO NOTHING"
)
NEXT = "JOIN membership_tier nt ON nt.group_id = t.group_id AND nt.rank = t.rank + 1"
VALUE = "COALESCE(s.value, 0)"


def compute_nudges(*, now: dt.datetime | None = None) -> int:
    """Record this month's nudges for every member they apply to. Returns how many are new."""
    now = now or timezone.now()
    bounds, period = WindowBounds(now), period_of(now)
    stamp = to_db(now)
    stalled_since = to_db(now - STALLED_AFTER)
    at_risk_since = to_db(now - AT_RISK_AFTER)
    created = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for group in load_programme().groups:
            values, value_params = _values(group.id, group.metric, bounds.start(group.window))
            kinds = []
            if group.metric == Metric.SPEND:
                kinds.append(
                    (
                        NudgeKind.ABOUT_TO_UPGRADE,
                        "nt",
                        NEXT,
                        f"nt.upgrade_threshold - {VALUE}",
                        f"{VALUE} >= nt.upgrade_threshold - %s AND {VALUE} < nt.upgrade_threshold",
                        [UPGRADE_MARGIN],
                    )
                )
            kinds += [
                (
                    NudgeKind.STALLED,
                    "nt",
                    NEXT,
                    f"CASE WHEN nt.upgrade_threshold > {VALUE} "
                    f"THEN nt.upgrade_threshold - {VALUE} ELSE 0 END",
                    "t.rank = 1 AND m.last_order_at IS NOT NULL AND m.last_order_at < %s",
                    [stalled_since],
                ),
                (
                    NudgeKind.DOWNGRADE_RISK,
                    "t",
                    "",
                    f"CASE WHEN t.retention_threshold > {VALUE} "
                    f"THEN t.retention_threshold - {VALUE} ELSE 0 END",
                    "t.rank > 1 AND (m.last_order_at IS NULL OR m.last_order_at < %s)",
                    [at_risk_since],
                ),
            ]
            for kind, tier, join, amount, condition, condition_params in kinds:
                sql = INSERT.format(
                    tier=tier, amount=amount, next_join=join, values=values, condition=condition
                )
                cursor.execute(
                    sql, [kind.value, period, stamp, *value_params, group.id, *condition_params]
                )
                created += max(cursor.rowcount, 0)
        if created:
            webhooks.nudges_created(created_at=stamp, period=period)
    return created


def current_nudges(
    member: Member, *, programme=None, now: dt.datetime | None = None
) -> list[Nudge]:
    """This month's nudges whose reason still holds, with the operator's offer attached."""
    holder_id = member.tier_holder_id or member.pk
    nudges = list(
        Nudge.objects.filter(member_id=holder_id, period=period_of(now or timezone.now()))
        .select_related("tier__group")
        .order_by("kind")
    )
    if not nudges:
        return []
    holder = member.tier_holder if member.tier_holder_id else member
    programme = programme or load_programme()
    offers = dict(NudgeOffer.objects.filter(active=True).values_list("kind", "text"))
    current = []
    for nudge in nudges:
        if nudge.kind == NudgeKind.DOWNGRADE_RISK:
            still = holder.last_order_at is None or holder.last_order_at < nudge.created_at
        else:
            # Still below the tier the nudge points at (the ranks come from the programme
            # already in memory, not another query).
            group = programme.group_of_tier(nudge.tier_id)
            still = (
                group is not None
                and holder.group_id == group.id
                and group.rank_of(holder.tier_id) < nudge.tier.rank
            )
        if still:
            nudge.offer = offers.get(nudge.kind, "")
            current.append(nudge)
    return current


def _claim_batch() -> list[Nudge]:
    with transaction.atomic():
        rows = list(
            Nudge.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(sent_at__isnull=True)
            .select_related("member", "tier__group")
            .order_by("created_at", "id")[:BATCH]
        )
        Nudge.objects.filter(pk__in=[r.pk for r in rows]).update(sent_at=timezone.now())
    return rows


def send_nudges() -> int:
    """E-mail every unsent nudge with its offer: claimed first, so at most once."""
    offers = dict(NudgeOffer.objects.filter(active=True).values_list("kind", "text"))
    sent = 0
    while rows := _claim_batch():
        for nudge in rows:
            sent += email_member(
                member=nudge.member,
                template="membership/email/nudge.txt",
                context={"nudge": nudge, "offer": offers.get(nudge.kind, "")},
            )
    return sent
