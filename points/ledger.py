"""The points ledger: the one public way to post. Append-only; one Entry per movement.

Every writer (earning, redemption, reversal, adjustment, rewards, partners) takes the
member's account's row lock with ``lock_account`` before reading it, then ``post``s
entries and ``take``s from lots under that row lock; ``existing_entry`` makes a key's
second posting answer with the first. The unique idempotency key backs the row lock.
Postings for many accounts at once (an import's opening balances, expiry) are
set-based: ``earn_many`` and ``expire_lots``, which row-lock their accounts in id order.
"""

from __future__ import annotations

import datetime as dt
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from api.webhooks import events as webhooks
from membership.services.rules import add_months_local
from membership.sqltime import to_db

from .models import Account, Entry, Lot
from .selectors import spendable


def lock_account(member_id: int) -> Account:
    """The member's account (created if missing) under its row lock (``select_for_update``)."""
    Account.objects.get_or_create(member_id=member_id)
    return Account.objects.select_for_update().get(member_id=member_id)


def existing_entry(key: str, points: int) -> Entry | None:
    entry = Entry.objects.filter(idempotency_key=key).first()
    if entry is not None and entry.points != points:
        raise ValidationError(
            _("Idempotency key %(key)s was already used for %(points)s points.")
            % {"key": key, "points": entry.points}
        )
    return entry


def post(
    account: Account,
    kind,
    points: int,
    source: str,
    ref: str,
    key: str,
    now,
    reason="",
    shortfall=0,
):
    account.balance += points
    account.save(update_fields=["balance", "shortfall"])
    entry = Entry.objects.create(
        account=account,
        kind=kind,
        points=points,
        source=source,
        source_ref=ref,
        idempotency_key=key,
        reason=reason,
        shortfall=shortfall,
        created_at=now,
    )
    webhooks.points_posted(entry_id=entry.pk)
    return entry


def take(account: Account, points: int, now, *, first: Lot | None = None, spendable_only: bool):
    """Take ``points`` from lots, ``first`` then oldest expiry first. Returns what was taken."""
    lots = Lot.objects.select_for_update().filter(
        account=account, remaining__gt=0, expires_at__gt=now
    )
    if spendable_only:
        lots = lots.filter(available_at__lte=now)
    ordered = ([first] if first is not None and first.remaining > 0 else []) + [
        lot for lot in lots.order_by("expires_at", "id") if first is None or lot.pk != first.pk
    ]
    taken = 0
    for lot in ordered:
        step = min(lot.remaining, points - taken)
        if step <= 0:
            break
        lot.remaining -= step
        lot.save(update_fields=["remaining"])
        taken += step
    return taken


def spend(account: Account, points: int, now) -> None:
    """Take ``points`` from the spendable lots, oldest expiry first; refused, changing
    nothing, if fewer can be spent. The caller holds the account's lock and posts the entry.
    """
    have = spendable(account.member_id, now)
    if have < points:
        raise ValidationError(
            _("Not enough points: %(have)s can be spent, %(want)s asked.")
            % {"have": have, "want": points}
        )
    take(account, points, now, spendable_only=True)


def earn(
    *,
    member_id: int,
    points: int,
    source: str,
    source_ref: str,
    key: str,
    available_at=None,
    reason="",
    kind: str = Entry.Kind.EARN,
    new_account: bool = False,
) -> Entry:
    """Add an earning lot. Idempotent on ``key``. A recorded shortfall is settled first.

    ``new_account``: the caller has just read that the member has no points account
    (an order's earning): it is opened before the one-statement earning, which then
    runs once instead of failing first."""
    if points <= 0:
        raise ValidationError(_("Earned points must be above zero."))
    now = timezone.now()
    fast_earn = partial(
        _fast_earn,
        member_id=member_id,
        points=points,
        source=source,
        source_ref=source_ref,
        key=key,
        available_at=available_at or now,
        reason=reason,
        kind=kind,
        now=now,
    )
    opened = new_account and _opened_account(member_id)
    fast = fast_earn()
    if fast is None and not opened and _opened_account(member_id):
        fast = fast_earn()  # a member's first earning: the account is new, owing nothing
    if fast is not None:
        return fast
    with transaction.atomic():
        account = lock_account(member_id)
        if entry := existing_entry(key, points):
            return entry
        entry = post(account, kind, points, source, source_ref, key, now, reason)
        available_at = available_at or now
        settle = min(account.shortfall, points)
        Lot.objects.create(
            entry=entry,
            account=account,
            points=points,
            remaining=points - settle,
            available_at=available_at,
            expires_at=lot_expiry(available_at),
        )
        if settle:
            account.shortfall -= settle
            post(account, Entry.Kind.REVERSE, -settle, "shortfall", key, f"{key}:settle", now)
        return entry


# The common earning in one statement: lock the account (if it exists and owes nothing),
# insert the entry unless its key is taken, its lot, and the balance. Anything else —
# no account yet, a shortfall to settle, a repeated key — returns no row and takes the
# general path below, which does the same in several statements. The entry's points.posted
# webhook rows are written by the same statement (``hook``), so it stays one statement.
FAST_EARN = """
WITH acct AS (
    SELECT id FROM points_account WHERE member_id = %(member)s AND shortfall = 0 FOR UPDATE
), ins AS (
    INSERT INTO points_entry (account_id, kind, points, source, source_ref, idempotency_key,
                              shortfall, reason, created_at)
    SELECT id, %(kind)s, %(points)s, %(source)s, %(ref)s, %(key)s, 0, %(reason)s, %(now)s
    FROM acct
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, account_id, kind, points, source, source_ref
), hook AS (
    {hook}
), lot AS (
    INSERT INTO points_lot (entry_id, account_id, points, remaining, available_at, expires_at)
    SELECT id, account_id, %(points)s, %(points)s, %(available)s, %(expires)s FROM ins
), moved AS (
    UPDATE points_account SET balance = balance + %(points)s
    WHERE id = (SELECT account_id FROM ins)
)
SELECT ins.id, ins.account_id, done.id, done.points, done.account_id, done.kind, done.source,
       done.source_ref, done.shortfall, done.reason, done.created_at,
       (SELECT COUNT(*) FROM hook)
FROM (SELECT 1) one
LEFT JOIN ins ON true
LEFT JOIN points_entry done ON done.idempotency_key = %(key)s
""".replace("{hook}", webhooks.POINTS_POSTED_FROM_INSERTED)


def _opened_account(member_id: int) -> bool:
    """Open the member's account if it has none (PostgreSQL, one statement); True if opened."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO points_account (member_id, balance, shortfall) VALUES (%s, 0, 0) "
            "ON CONFLICT (member_id) DO NOTHING",
            [member_id],
        )
        return cursor.rowcount == 1


def _fast_earn(
    *, member_id, points, source, source_ref, key, available_at, reason, kind, now
) -> Entry | None:
    if connection.vendor != "postgresql":
        return None
    # With server-side binding (settings) psycopg prepares this after a few runs on a
    # connection: planning it cost PostgreSQL more CPU than running it.
    with connection.cursor() as cursor:
        cursor.execute(
            FAST_EARN,
            {
                "member": member_id,
                "kind": kind,
                "points": points,
                "source": source,
                "ref": source_ref,
                "key": key,
                "reason": reason,
                "now": now,
                "available": available_at,
                "expires": lot_expiry(available_at),
                "retry_until": now + webhooks.RETRY_FOR,
            },
        )
        entry_id, account_id, done_id, done_points, *done, hooked = cursor.fetchone()
    if done_id is not None and done_points == points:
        # The same event again: the first posting, as it was written.
        fields = ("account_id", "kind", "source", "source_ref", "shortfall", "reason", "created_at")
        return Entry(
            pk=done_id,
            points=done_points,
            idempotency_key=key,
            **dict(zip(fields, done, strict=True)),
        )
    if entry_id is None:
        return None
    if hooked:
        # The rows are written with the entry; this only asks for them to be sent now
        # (the beat job sends them anyway).
        webhooks.owe_sending()
    return Entry(
        pk=entry_id,
        account_id=account_id,
        kind=kind,
        points=points,
        source=source,
        source_ref=source_ref,
        idempotency_key=key,
        shortfall=0,
        reason=reason,
        created_at=now,
    )


def lot_expiry(available_at: dt.datetime) -> dt.datetime:
    return add_months_local(available_at, settings.POINTS_LOT_MONTHS)


def _lock_accounts(cursor, where: str, params: list) -> None:
    """Row-lock the accounts ``where`` selects, in id order: two set-based postings, or one
    beside a single account's posting, then wait for each other instead of deadlocking."""
    if connection.features.has_select_for_update:
        cursor.execute(
            f"SELECT id FROM points_account WHERE {where} ORDER BY id FOR UPDATE", params
        )


def earn_many(rows, *, source: str, reason: str = "", now: dt.datetime | None = None) -> None:
    """Earn for many accounts at once: one entry and one lot each, idempotent on each key.

    ``rows`` is a ``values()`` queryset with ``member_id``, ``points`` (above zero), ``ref``
    and ``key``. A key already posted is skipped whatever its amount: the caller checks
    amounts first (the import refuses a different opening balance row by row). Accounts
    are created where missing and row-locked; those owing a shortfall take ``earn`` one by
    one, which settles it first.
    """
    now = now or timezone.now()
    at, expires = to_db(now), to_db(lot_expiry(now))
    sub, sub_params = rows.query.sql_with_params()
    members = f"SELECT r.member_id FROM ({sub}) r"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO points_account (member_id, balance, shortfall) "
            f"SELECT DISTINCT r.member_id, 0, 0 FROM ({sub}) r WHERE true "
            "ON CONFLICT (member_id) DO NOTHING",
            sub_params,
        )
        _lock_accounts(cursor, f"member_id IN ({members})", sub_params)
        insert = (
            "INSERT INTO points_entry (account_id, kind, points, source, source_ref, "
            "idempotency_key, shortfall, reason, created_at) "
            f"SELECT a.id, %s, r.points, %s, r.ref, r.key, 0, %s, %s FROM ({sub}) r "
            "JOIN points_account a ON a.member_id = r.member_id WHERE a.shortfall = 0 "
            "ON CONFLICT (idempotency_key) DO NOTHING"
        )
        insert_params = [Entry.Kind.EARN.value, source, reason, at, *sub_params]
        if connection.vendor == "postgresql":
            # One statement: the lots and balances from exactly the entries it inserted.
            cursor.execute(
                f"WITH ins AS ({insert} RETURNING id, account_id, points), lots AS ("
                "INSERT INTO points_lot (entry_id, account_id, points, remaining, "
                "available_at, expires_at) SELECT id, account_id, points, points, %s, %s "
                "FROM ins) UPDATE points_account SET balance = points_account.balance + d.total "
                "FROM (SELECT account_id, SUM(points) AS total FROM ins GROUP BY account_id) d "
                "WHERE points_account.id = d.account_id",
                [*insert_params, at, expires],
            )
        else:
            _post_many_in_steps(cursor, insert, insert_params, sub, sub_params, source, at, expires)
        cursor.execute(
            f"SELECT r.member_id, r.points, r.ref, r.key FROM ({sub}) r "
            "JOIN points_account a ON a.member_id = r.member_id WHERE a.shortfall > 0",
            sub_params,
        )
        owing = cursor.fetchall()
    for member_id, points, ref, key in owing:
        earn(
            member_id=member_id,
            points=points,
            source=source,
            source_ref=ref,
            key=key,
            reason=reason,
        )


def _post_many_in_steps(cursor, insert, insert_params, sub, sub_params, source, at, expires):
    """``earn_many``'s entries, lots and balances where a statement cannot feed another
    (SQLite, one writer at a time)."""
    # The entries this call wrote: earnings under its keys still without their lot. Every
    # other earning gets its lot in its own transaction (committed, or unseen here), and
    # a key posted before may share this call's timestamp (a frozen or coarse clock).
    written = (
        "SELECT e.id FROM points_entry e WHERE e.kind = %s AND e.source = %s "
        f"AND e.idempotency_key IN (SELECT r.key FROM ({sub}) r) "
        "AND NOT EXISTS (SELECT 1 FROM points_lot l WHERE l.entry_id = e.id)"
    )
    written_params = [Entry.Kind.EARN.value, source, *sub_params]
    cursor.execute(insert, insert_params)
    # The balances first: once the lots are in, the written entries look like others.
    cursor.execute(
        "UPDATE points_account SET balance = points_account.balance + d.total FROM "
        "(SELECT e.account_id, SUM(e.points) AS total FROM points_entry e "
        f"WHERE e.id IN ({written}) GROUP BY e.account_id) d "
        "WHERE points_account.id = d.account_id",
        written_params,
    )
    cursor.execute(
        "INSERT INTO points_lot (entry_id, account_id, points, remaining, available_at, "
        "expires_at) SELECT e.id, e.account_id, e.points, e.points, %s, %s "
        f"FROM points_entry e WHERE e.id IN ({written})",
        [at, expires, *written_params],
    )


def expire_lots(now: dt.datetime) -> int:
    """Expire every lot past its date, set-based: one entry per lot, balances moved together."""
    stamp = to_db(now)
    due = "expires_at <= %s AND remaining > 0"
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_accounts(cursor, f"id IN (SELECT account_id FROM points_lot WHERE {due})", [stamp])
        cursor.execute(
            "INSERT INTO points_entry (account_id, kind, points, source, source_ref, "
            "idempotency_key, reason, shortfall, created_at) "
            "SELECT account_id, 'expire', -remaining, 'expiry', CAST(id AS TEXT), "
            f"'expire:lot:' || CAST(id AS TEXT), '', 0, %s FROM points_lot WHERE {due}",
            [stamp, stamp],
        )
        expired = cursor.rowcount
        cursor.execute(
            "UPDATE points_account SET balance = points_account.balance - d.total FROM "
            f"(SELECT account_id, SUM(remaining) AS total FROM points_lot WHERE {due} "
            "GROUP BY account_id) d WHERE points_account.id = d.account_id",
            [stamp],
        )
        cursor.execute(f"UPDATE points_lot SET remaining = 0 WHERE {due}", [stamp])
        if expired:
            webhooks.points_expired(created_at=stamp)
    return expired
