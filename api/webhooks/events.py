"""Webhook events: one delivery row per active endpoint that wants the event, written in
the caller's transaction, and one outbox follow-up that sends them after the commit.

Every event goes in through one INSERT … SELECT: the SELECT gives ``event``, ``event_id``
and ``payload`` (JSON) per event, crossed with the endpoints subscribed to it. So a
set-based job (the recompute, the nudges) emits all its events in one statement, and a
single change costs one statement whether or not any endpoint listens. A repeated
event id is dropped (unique per endpoint), so emitting twice tells the shop once.

The other apps call the named functions below at the point where the change is written;
they never write this app's tables themselves.
"""

from __future__ import annotations

import datetime as dt
import json

from django.db import connection
from django.utils import timezone

from membership.outbox import enqueue

from ..models import WebhookEndpoint, WebhookEvent

SEND_TASK = "api.tasks.send_webhooks"
# How long a delivery is retried (exponential backoff) before it has failed.
RETRY_FOR = dt.timedelta(hours=24)


def _sql() -> dict[str, str]:
    if connection.vendor == "postgresql":
        return {
            "json": "json_build_object",
            "payload": "CAST({} AS jsonb)",
            "subscribed": "e.events @> jsonb_build_array(s.event)",
            "distinct": "IS DISTINCT FROM",
        }
    return {
        "json": "json_object",
        "payload": "{}",
        "subscribed": "EXISTS (SELECT 1 FROM json_each(e.events) j WHERE j.value = s.event)",
        "distinct": "IS NOT",
    }


def emit_select(select: str, params: list, *, now: dt.datetime | None = None) -> int:
    """Owe every event the SELECT gives (columns event, event_id, payload) to each active
    endpoint subscribed to it. Call inside the transaction of the change. Returns how many
    delivery rows were written."""
    now = now or timezone.now()
    d = _sql()
    stamp = connection.ops.adapt_datetimefield_value(now)
    until = connection.ops.adapt_datetimefield_value(now + RETRY_FOR)
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO api_webhookdelivery (endpoint_id, event, event_id, payload, status, "
            "attempts, created_at, next_attempt_at, retry_until, last_error) "
            f"SELECT e.id, s.event, s.event_id, {d['payload'].format('s.payload')}, 'pending', "
            "0, %s, %s, %s, '' "
            f"FROM ({select}) s CROSS JOIN api_webhookendpoint e "
            f"WHERE e.active AND {d['subscribed']} "
            "ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            [stamp, stamp, until, *params],
        )
        written = max(cur.rowcount, 0)
    if written:
        enqueue(SEND_TASK)
    return written


def _anyone_listening() -> bool:
    """Before a set-based emit: with no active endpoint, the SELECT is not even built."""
    return WebhookEndpoint.objects.filter(active=True).exists()


def emit(event: WebhookEvent, *, event_id: str, payload: dict) -> int:
    """Owe one event whose payload is built here in Python."""
    return emit_select(
        "SELECT %s AS event, %s AS event_id, %s AS payload",
        [str(event), event_id, json.dumps(payload, ensure_ascii=False)],
    )


def _member(alias: str = "m") -> str:
    return f"{_sql()['json']}('id', {alias}.id, 'external_id', {alias}.external_id)"


def _tier_changes_select(where: str) -> str:
    """Both events of the history rows matched by ``where`` (alias h): group.changed where
    the group moved, tier.changed where the tier did."""
    d = _sql()
    payload = (
        f"{d['json']}('member', {_member()}, "
        f"'from', {d['json']}('group_id', h.from_group_id, 'group', fg.name, "
        "'tier_id', h.from_tier_id, 'tier', ft.name), "
        f"'to', {d['json']}('group_id', h.to_group_id, 'group', tg.name, "
        "'tier_id', h.to_tier_id, 'tier', tt.name), "
        "'cause', h.cause, 'history_id', h.id)"
    )
    rows = (
        "FROM membership_tierhistory h JOIN membership_member m ON m.id = h.member_id "
        "LEFT JOIN membership_vipgroup fg ON fg.id = h.from_group_id "
        "LEFT JOIN membership_vipgroup tg ON tg.id = h.to_group_id "
        "LEFT JOIN membership_tier ft ON ft.id = h.from_tier_id "
        "LEFT JOIN membership_tier tt ON tt.id = h.to_tier_id "
        f"WHERE {where}"
    )
    return " UNION ALL ".join(
        f"SELECT '{event.value}' AS event, "
        f"'{event.value}:history-' || CAST(h.id AS TEXT) AS event_id, "
        f"{payload} AS payload {rows} AND h.from_{column}_id {d['distinct']} h.to_{column}_id"
        for event, column in (
            (WebhookEvent.GROUP_CHANGED, "group"),
            (WebhookEvent.TIER_CHANGED, "tier"),
        )
    )


def tier_change_recorded(*, history_id: int) -> int:
    """group.changed and/or tier.changed for one tier history row."""
    return emit_select(_tier_changes_select("h.id = %s"), [history_id, history_id])


def tier_changes_recorded(*, changes: str, created_at, cause: str) -> int:
    """The same for every history row a set-based recompute just wrote from its temporary
    table ``changes`` (applied rows), in one statement. ``created_at`` is the adapted
    timestamp the rows were written with."""
    if not _anyone_listening():
        return 0
    where = (
        f"h.member_id IN (SELECT c.id FROM {changes} c WHERE c.applied = 1) "
        "AND h.created_at = %s AND h.cause = %s"
    )
    return emit_select(_tier_changes_select(where), [created_at, cause, created_at, cause])


def tier_history_recorded(*, where: str, params: list, created_at, cause: str) -> int:
    """The same for the history rows the one-statement recompute wrote (PostgreSQL), whose
    changes live in no table afterwards: the chunk's member filter ``where`` (on
    ``h.member_id``) with the rows' moment and cause."""
    if not _anyone_listening():
        return 0
    rows = [*params, created_at, cause]
    return emit_select(
        _tier_changes_select(f"{where} AND h.created_at = %s AND h.cause = %s"), rows + rows
    )


def points_posted(*, entry_id: int) -> int:
    """points.posted for one ledger entry, with the balance after it."""
    return emit_select(_points_posted_select("pe.id = %s"), [entry_id])


# points.posted for the entry inserted by the ledger's one-statement earning (its CTE
# ``ins``, PostgreSQL only): the same payload as _points_posted_select, the balance taken
# before that statement's own update. Named parameters: now, retry_until.
POINTS_POSTED_FROM_INSERTED = f"""
    INSERT INTO api_webhookdelivery (endpoint_id, event, event_id, payload, status, attempts,
                                     created_at, next_attempt_at, retry_until, last_error)
    SELECT e.id, '{WebhookEvent.POINTS_POSTED.value}',
           '{WebhookEvent.POINTS_POSTED.value}:entry-' || CAST(ins.id AS TEXT),
           jsonb_build_object('member',
                              jsonb_build_object('id', m.id, 'external_id', m.external_id),
                              'entry_id', ins.id, 'kind', ins.kind, 'points', ins.points,
                              'balance', a.balance + ins.points, 'source', ins.source,
                              'source_ref', ins.source_ref),
           'pending', 0, %(now)s, %(now)s, %(retry_until)s, ''
    FROM ins JOIN points_account a ON a.id = ins.account_id
    JOIN membership_member m ON m.id = a.member_id
    CROSS JOIN api_webhookendpoint e
    WHERE e.active AND e.events @> '["{WebhookEvent.POINTS_POSTED.value}"]'::jsonb
    ON CONFLICT (endpoint_id, event_id) DO NOTHING
    RETURNING 1
"""


def owe_sending() -> None:
    """Ask for the deliveries just written to be sent after the commit."""
    enqueue(SEND_TASK)


def points_expired(*, created_at) -> int:
    """points.posted for every expiry entry the daily expiry just wrote (set-based)."""
    if not _anyone_listening():
        return 0
    return emit_select(
        _points_posted_select("pe.kind = 'expire' AND pe.created_at = %s"), [created_at]
    )


def _points_posted_select(where: str) -> str:
    d = _sql()
    return (
        f"SELECT '{WebhookEvent.POINTS_POSTED.value}' AS event, "
        f"'{WebhookEvent.POINTS_POSTED.value}:entry-' || CAST(pe.id AS TEXT) AS event_id, "
        f"{d['json']}('member', {_member()}, 'entry_id', pe.id, 'kind', pe.kind, "
        "'points', pe.points, 'balance', a.balance, 'source', pe.source, "
        "'source_ref', pe.source_ref) AS payload "
        "FROM points_entry pe JOIN points_account a ON a.id = pe.account_id "
        f"JOIN membership_member m ON m.id = a.member_id WHERE {where}"
    )


def points_expiring(*, member, points: int, expires_at: dt.datetime, now: dt.datetime) -> int:
    """points.expiring: the member's points that expire within the reminder's window."""
    return emit(
        WebhookEvent.POINTS_EXPIRING,
        event_id=f"{WebhookEvent.POINTS_EXPIRING.value}:member-{member.pk}:{now:%Y%m%d%H%M%S}",
        payload={
            "member": {"id": member.pk, "external_id": member.external_id},
            "points": points,
            "expires_at": expires_at.isoformat(),
        },
    )


def nudges_created(*, created_at, period: str) -> int:
    """nudge.created for every nudge the monthly job just recorded (set-based)."""
    if not _anyone_listening():
        return 0
    d = _sql()
    return emit_select(
        f"SELECT '{WebhookEvent.NUDGE_CREATED.value}' AS event, "
        f"'{WebhookEvent.NUDGE_CREATED.value}:nudge-' || CAST(n.id AS TEXT) AS event_id, "
        f"{d['json']}('member', {_member()}, 'nudge_id', n.id, 'kind', n.kind, "
        "'period', n.period, 'tier_id', n.tier_id, 'tier', t.name, 'amount', n.amount) "
        "AS payload FROM membership_nudge n JOIN membership_member m ON m.id = n.member_id "
        "LEFT JOIN membership_tier t ON t.id = n.tier_id "
        "WHERE n.created_at = %s AND n.period = %s",
        [created_at, period],
    )


# A subscription's event kinds that the shop hears about, and as what.
SUBSCRIPTION_EVENTS = {
    "renewed": WebhookEvent.SUBSCRIPTION_RENEWED,
    "payment_failed": WebhookEvent.SUBSCRIPTION_FAILED,
    "subscribe_failed": WebhookEvent.SUBSCRIPTION_FAILED,
    "expired_unpaid": WebhookEvent.SUBSCRIPTION_FAILED,
}


def subscription_event_recorded(*, event) -> int:
    """subscription.renewed or subscription.failed for one SubscriptionEvent, if it is one."""
    kind = SUBSCRIPTION_EVENTS.get(event.kind)
    if kind is None:
        return 0
    sub = event.subscription
    return emit(
        kind,
        event_id=f"{kind.value}:event-{event.pk}",
        payload={
            "member": {"id": sub.member_id, "external_id": sub.member.external_id},
            "subscription_id": sub.pk,
            "kind": event.kind,
            "plan": sub.plan.name,
            "state": sub.state,
            "period_start": sub.period_start.isoformat() if sub.period_start else None,
            "period_end": sub.period_end.isoformat() if sub.period_end else None,
            "reason": event.reason,
        },
    )
