"""Reads of the points ledger, for services, pages and the admin."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.utils import timezone

from membership.sqltime import to_db

# What a member can spend now: the lots past their pending days and not yet expired.
# Written once, as SQL over the account ``a``: spendable() and the member's page use it.
SPENDABLE = """COALESCE((SELECT SUM(l.remaining) FROM points_lot l
                 WHERE l.account_id = a.id AND l.remaining > 0 AND l.expires_at > %(now)s
                   AND l.available_at <= %(now)s), 0)"""


def spendable(member_id: int, now: dt.datetime | None = None) -> int:
    """The points ``member_id`` can spend at ``now``; 0 without an account."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {SPENDABLE} FROM points_account a WHERE a.member_id = %(member)s",
            {"now": to_db(now or timezone.now()), "member": member_id},
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0
