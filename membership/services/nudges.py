"""Predictive nudges (DESIGN.md): set-based, at most one of a kind per member a month.

| kind             | who                                                     | payload        |
| about to upgrade | spend group, within NT$500 of the next tier's threshold | next tier, gap |
| stalled          | any tier below the top, has bought, nothing for 3 months| next tier, gap |
|                  | (growth points: has earned, nothing earned for 3 months)|                |
| downgrade risk   | above the base tier, nothing bought for 60 days         | tier, gap to   |
|                  |                                                         | its retention  |

Each kind is one INSERT … SELECT per group over the group's members and their
window's orders (a sub-account's orders count for its tier holder); the unique
(member, kind, period) constraint makes a second run add nothing.

The offer that goes with a nudge (``offers_for``): an active offer aimed at a saved
audience whose members include the nudged member (the audience's FilterSet queryset as
a subquery, one query per such offer), else the kind's active offer for everyone. When
a member is in two audiences with offers of one kind, the older offer wins.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from api.webhooks import events as webhooks
from membership.models import Member, Metric, Nudge, NudgeKind, NudgeOffer
from membership.sqltime import to_db

from .notifications import email_member
from .rules import (
    COUNTED_ORDER_SQL,
    GROWTH_POINTS_SQL,
    NET_SPEND_SQL,
    WindowBounds,
    load_programme,
)

UPGRADE_MARGIN = 500  # NT$
STALLED_AFTER = dt.timedelta(days=90)
AT_RISK_AFTER = dt.timedelta(days=60)
BATCH = 500


def period_of(now: dt.datetime) -> str:
    return f"{timezone.localdate(now):%Y-%m}"


def _values(group_id: int, metric: str, start) -> tuple[str, list]:
    """Each tier holder's qualifying value in the window: SUM(net NT$), paid orders, or
    growth points."""
    if metric == Metric.GROWTH_POINTS:
        return _growth_points(group_id, start)
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


def _growth_points(group_id: int, start) -> tuple[str, list]:
    where, params = "om.group_id = %s", [group_id]
    if start is not None:
        where += " AND e.created_at >= %s"
        params.append(to_db(start))
    sql = (
        f"SELECT COALESCE(om.tier_holder_id, om.id) AS holder, SUM({GROWTH_POINTS_SQL}) AS value "
        "FROM points_entry e JOIN points_account pa ON pa.id = e.account_id "
        "JOIN membership_member om ON om.id = pa.member_id "
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
# In a growth-points group progress is earning growth points, whatever from: stalled is
# having earned some once, and none since the cut-off.
_EARNED = (
    "SELECT 1 FROM points_account pa JOIN points_entry e ON e.account_id = pa.id "
    f"WHERE pa.member_id = m.id AND e.kind = 'earn' AND ({GROWTH_POINTS_SQL}) > 0"
)
STALLED_BY_POINTS = f"EXISTS ({_EARNED}) AND NOT EXISTS ({_EARNED} AND e.created_at >= %s)"
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
                    # At every tier below the top (the join needs a next tier).
                    STALLED_BY_POINTS
                    if group.metric == Metric.GROWTH_POINTS
                    else "m.last_order_at IS NOT NULL AND m.last_order_at < %s",
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
    holder = member.tier_holder if member.tier_holder_id else member
    this_period = Q(period=period_of(now or timezone.now()))
    if holder.next_review_on is not None:
        # A review warning is kept under its review date, not the month.
        this_period |= Q(kind=NudgeKind.REVIEW_WARNING, period=holder.next_review_on.isoformat())
    nudges = list(
        Nudge.objects.filter(this_period, member_id=holder_id)
        .select_related("tier__group")
        .order_by("kind")
    )
    if not nudges:
        return []
    programme = programme or load_programme()
    offers = offers_for(Nudge.objects.filter(pk__in=[n.pk for n in nudges]))
    current = []
    for nudge in nudges:
        if nudge.kind == NudgeKind.DOWNGRADE_RISK:
            still = holder.last_order_at is None or holder.last_order_at < nudge.created_at
        elif nudge.kind == NudgeKind.REVIEW_WARNING:
            # The same review of the same tier; whether the gap is closed is the page's
            # live retention figure to say (selectors.member_dashboard).
            still = holder.earned_tier_id == nudge.tier_id
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
            nudge.offer = offers.get(nudge.pk, "")
            current.append(nudge)
    return current


def _audience_members(offer: NudgeOffer) -> QuerySet[Member]:
    # Imported here: segments builds on membership, not the other way round.
    from segments.audiences import members_of

    return members_of(offer.audience)


def offers_for(nudges: QuerySet[Nudge]) -> dict[int, str]:
    """Each nudge's offer text by nudge id (none: no active offer for its kind).

    Aimed offers first, oldest first, each one query with its audience as a subquery;
    then the offer for everyone fills the rest of its kind.
    """
    texts: dict[int, str] = {}
    offers = NudgeOffer.objects.filter(active=True).select_related("audience")
    for offer in offers.filter(audience__isnull=False).order_by("pk"):
        reached = nudges.filter(
            kind=offer.kind, member__in=_audience_members(offer).values("pk")
        ).values_list("pk", flat=True)
        for pk in reached:
            texts.setdefault(pk, offer.text)
    for offer in offers.filter(audience__isnull=True):
        for pk in nudges.filter(kind=offer.kind).values_list("pk", flat=True):
            texts.setdefault(pk, offer.text)
    return texts


def offer_reach(offer: NudgeOffer, *, now: dt.datetime | None = None) -> int:
    """How many of this month's nudges of the offer's kind go to the offer's audience
    (every one of the kind for the offer for everyone), before older offers take theirs."""
    nudges = Nudge.objects.filter(period=period_of(now or timezone.now()), kind=offer.kind)
    if offer.audience_id:
        nudges = nudges.filter(member__in=_audience_members(offer).values("pk"))
    return nudges.count()


def set_nudge_offer(*, kind: str, text: str, audience=None) -> NudgeOffer:
    """The offer for a kind (for everyone, or for one audience), made if missing."""
    offer, _created = NudgeOffer.objects.get_or_create(
        kind=kind, audience=audience, defaults={"text": text}
    )
    return offer


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
    sent = 0
    while rows := _claim_batch():
        offers = offers_for(Nudge.objects.filter(pk__in=[r.pk for r in rows]))
        for nudge in rows:
            sent += email_member(
                member=nudge.member,
                template="membership/email/nudge.txt",
                context={"nudge": nudge, "offer": offers.get(nudge.pk, "")},
            )
    return sent
