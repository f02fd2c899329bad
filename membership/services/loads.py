"""Loading many members, tags, orders and grants at once, from rows the caller holds.

Each function takes ``rows``, a ``values()`` queryset (an import's staging table, say)
naming the columns it reads, and writes this app's tables in one set-based statement,
keyed by the member's external id (``member_ref``). Each is idempotent: rows already
loaded are kept as they are. The caller evaluates the members afterwards (set-based).
"""

from __future__ import annotations

import datetime as dt

from django.db import connection

from membership.models import Member, Tag, Tier
from membership.sqltime import to_db


def _sql(rows) -> tuple[str, list]:
    sql, params = rows.query.sql_with_params()
    return f"({sql})", list(params)


def upsert_members(rows, *, at: dt.datetime) -> None:
    """Create or update members by external id from ``rows`` (``external_id``, ``name``,
    ``phone``, ``email``, ``birthday``, ``joined_at``).

    A blank cell keeps what the member already has (a file never wipes a phone number); a
    missing join date is ``at``; an earlier join date wins over a later one.
    """
    sub, params = _sql(rows)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO membership_member "
            "(external_id, name, phone, email, birthday, language, joined_at) "
            "SELECT s.external_id, s.name, s.phone, s.email, s.birthday, %s, "
            f"COALESCE(s.joined_at, %s) FROM {sub} s WHERE true "
            "ON CONFLICT (external_id) DO UPDATE SET name = excluded.name, "
            "phone = CASE WHEN excluded.phone <> '' THEN excluded.phone "
            "ELSE membership_member.phone END, "
            "email = CASE WHEN excluded.email <> '' THEN excluded.email "
            "ELSE membership_member.email END, "
            "birthday = COALESCE(excluded.birthday, membership_member.birthday), "
            "joined_at = CASE WHEN excluded.joined_at < membership_member.joined_at "
            "THEN excluded.joined_at ELSE membership_member.joined_at END",
            [Member.Language.ZH_HANT.value, to_db(at), *params],
        )


def tag_members(rows, *, at: dt.datetime) -> None:
    """Give members the tags in ``rows`` (``member_ref``, ``tag``); a tag new by name is
    created first. Whether new tags were allowed is the caller's check."""
    Tag.objects.bulk_create(
        [
            Tag(name=name)
            for name in rows.exclude(tag__in=Tag.objects.values("name"))
            .values_list("tag", flat=True)
            .distinct()
        ],
        ignore_conflicts=True,
    )
    sub, params = _sql(rows)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO membership_membertag (member_id, tag_id, added_at) "
            f"SELECT m.id, t.id, %s FROM {sub} s "
            "JOIN membership_member m ON m.external_id = s.member_ref "
            "JOIN membership_tag t ON t.name = s.tag WHERE true "
            "ON CONFLICT (member_id, tag_id) DO NOTHING",
            [to_db(at), *params],
        )


def load_orders(rows, *, source: str, at: dt.datetime, refund_ref: str = "import") -> int:
    """Paid orders from ``rows`` (``member_ref``, ``order_ref``, ``channel``, ``amount``,
    ``refunded_amount``, ``placed_at``), idempotent on (source, order id); with one refund
    (``refund_ref``) each for a refunded amount, dated at the order. They earn no points.
    Returns how many orders were new."""
    sub, params = _sql(rows)
    stamp = to_db(at)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO membership_order (member_id, source, external_id, channel, amount, "
            "refunded_amount, placed_at, status, created_at) "
            "SELECT m.id, %s, s.order_ref, s.channel, s.amount, s.refunded_amount, "
            f"s.placed_at, 'paid', %s FROM {sub} s "
            "JOIN membership_member m ON m.external_id = s.member_ref WHERE true "
            "ON CONFLICT (source, external_id) DO NOTHING",
            [source, stamp, *params],
        )
        created = cursor.rowcount
        # Only the orders this call wrote: their source and exact timestamp.
        cursor.execute(
            "INSERT INTO membership_refund (order_id, external_id, amount, refunded_at, "
            "created_at) SELECT o.id, %s, s.refunded_amount, s.placed_at, %s "
            f"FROM {sub} s JOIN membership_order o ON o.source = %s "
            "AND o.external_id = s.order_ref AND o.created_at = %s "
            "WHERE s.refunded_amount > 0 ON CONFLICT (order_id, external_id) DO NOTHING",
            [refund_ref, stamp, *params, source, stamp],
        )
    return created


def refresh_last_order(rows) -> None:
    """Each member in ``rows`` (``member_ref``): the time of their latest paid order."""
    sub, params = _sql(rows)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE membership_member SET last_order_at = (SELECT MAX(o.placed_at) "
            "FROM membership_order o WHERE o.member_id = membership_member.id "
            f"AND o.status = 'paid') WHERE external_id IN (SELECT s.member_ref FROM {sub} s)",
            params,
        )


def grant_tiers(
    rows, *, tier: Tier, starts_at: dt.datetime, ends_at: dt.datetime, source: str
) -> None:
    """Grant ``tier`` from ``starts_at`` to ``ends_at`` to each member in ``rows``
    (``member_ref``, ``source_ref``); idempotent on (source, source_ref)."""
    sub, params = _sql(rows)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO membership_tiergrant "
            "(member_id, tier_id, starts_at, ends_at, source, source_ref) "
            f"SELECT m.id, %s, %s, %s, %s, s.source_ref FROM {sub} s "
            "JOIN membership_member m ON m.external_id = s.member_ref WHERE true "
            "ON CONFLICT (source, source_ref) DO NOTHING",
            [tier.pk, to_db(starts_at), to_db(ends_at), source, *params],
        )
