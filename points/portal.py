import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from membership.sqltime import from_db, to_db

from .selectors import SPENDABLE

# One statement: the ORM took longer to build this than PostgreSQL to answer it, and the
# member's page runs it on every view.
SUMMARY = f"""
SELECT a.balance,
       {SPENDABLE},
       (SELECT l.expires_at FROM points_lot l
        WHERE l.account_id = a.id AND l.remaining > 0 AND l.expires_at > %(now)s
        ORDER BY l.expires_at, l.id LIMIT 1),
       (SELECT l.remaining FROM points_lot l
        WHERE l.account_id = a.id AND l.remaining > 0 AND l.expires_at > %(now)s
        ORDER BY l.expires_at, l.id LIMIT 1)
FROM points_account a WHERE a.member_id = %(member)s
"""


@dataclass
class Summary:
    balance: int
    spendable: int
    next_expiry_at: dt.datetime | None
    next_expiry_points: int | None


def points_summary(member_id: int, now=None) -> Summary | None:
    """Balance, what can be spent now, and the lot that expires next."""
    at = to_db(now or timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(SUMMARY, {"now": at, "member": member_id})
        row = cursor.fetchone()
    if row is None:
        return None
    balance, spendable, expires_at, expiring = row
    return Summary(int(balance), int(spendable), from_db(expires_at), expiring)


def points_panel(member):
    summary = points_summary(member.pk)
    if summary is None:
        return None
    return "members/panels/points.html", {"summary": summary}
