import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models.expressions import RawSQL
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

# The same facts as columns of the member page's one read. Not kept in the member
# summary: what can be spent and what expires next move with the clock, and the
# balance is already kept by the ledger in the posting's transaction.
_ACCOUNT = "FROM points_account a WHERE a.member_id = membership_member.id"
_NEXT_LOT = (
    "(SELECT l.{col} FROM points_lot l WHERE l.account_id = a.id AND l.remaining > 0 "
    "AND l.expires_at > %s ORDER BY l.expires_at, l.id LIMIT 1)"
)


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


def points_columns(now) -> dict:
    at = to_db(now)
    spendable = SPENDABLE.replace("%(now)s", "%s")
    return {
        "points_balance": RawSQL(f"SELECT a.balance {_ACCOUNT}", []),
        "points_spendable": RawSQL(f"SELECT {spendable} {_ACCOUNT}", [at, at]),
        "points_expiry_at": RawSQL(f"SELECT {_NEXT_LOT.format(col='expires_at')} {_ACCOUNT}", [at]),
        "points_expiry_points": RawSQL(
            f"SELECT {_NEXT_LOT.format(col='remaining')} {_ACCOUNT}", [at]
        ),
    }


def points_panel(member):
    if hasattr(member, "points_balance"):
        if member.points_balance is None:
            return None
        summary = Summary(
            int(member.points_balance),
            int(member.points_spendable or 0),
            from_db(member.points_expiry_at),
            member.points_expiry_points,
        )
    else:
        summary = points_summary(member.pk)
    if summary is None:
        return None
    return "members/panels/points.html", {"summary": summary}
