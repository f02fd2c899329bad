"""Opening points balances: one ledger entry per member, keyed so a second import adds nothing.

The key is per member (``import-opening:<external id>``), not per file: a corrected file
imported later cannot give a member a second opening balance. A different amount under the
same key is refused at the check, row by row.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import CharField, F, OuterRef, Subquery, Value
from django.db.models.functions import Concat
from django.utils.translation import gettext as _

from membership.sqltime import to_db
from points.models import Account, Entry
from points.services import earn, lot_expiry

from .models import Problem, StagedMember, StagedTag

KEY_PREFIX = "import-opening:"
REASON = "opening balance from import"


def key_for(external_id: str) -> str:
    return KEY_PREFIX + external_id


def check(job) -> None:
    key = Concat(Value(KEY_PREFIX), OuterRef("external_id"), output_field=CharField())
    clashing = (
        StagedMember.objects.filter(job=job, opening_points__gt=0)
        .annotate(posted=Subquery(Entry.objects.filter(idempotency_key=key).values("points")[:1]))
        .filter(posted__isnull=False)
        .exclude(posted=F("opening_points"))
    )
    problems, ids = [], []
    rows = clashing.values_list("line", "external_id", "posted", "opening_points")
    for line, external_id, posted, points in rows:
        ids.append(external_id)
        problems.append(
            Problem(
                job=job,
                line=line,
                column="opening_points",
                value=str(points),
                message=_("an opening balance of %(points)s points was already imported")
                % {"points": posted},
            )
        )
    if problems:
        Problem.objects.bulk_create(problems)
        StagedMember.objects.filter(job=job, external_id__in=ids).delete()
        StagedTag.objects.filter(job=job, external_id__in=ids).delete()


def post(job, now) -> None:
    """Set-based for every account without a shortfall; the service, one by one, for the rest."""
    at, expires = to_db(now), to_db(lot_expiry(now))
    with connection.cursor() as cursor:
        cursor.execute(ENSURE_ACCOUNTS, [job.pk])
        cursor.execute(INSERT_ENTRIES, [REASON, at, job.pk])
        cursor.execute(INSERT_LOTS, [at, expires, job.pk, at])
        cursor.execute(ADD_TO_BALANCES, [at, job.pk, at])
    owing = (
        StagedMember.objects.filter(job=job, opening_points__gt=0)
        .annotate(
            member_id=Subquery(
                Account.objects.filter(
                    member__external_id=OuterRef("external_id"), shortfall__gt=0
                ).values("member_id")[:1]
            )
        )
        .filter(member_id__isnull=False)
    )
    for member_id, external_id, points in owing.values_list(
        "member_id", "external_id", "opening_points"
    ):
        earn(
            member_id=member_id,
            points=points,
            source="import",
            source_ref=external_id,
            key=key_for(external_id),
            reason=REASON,
        )


ENSURE_ACCOUNTS = """
INSERT INTO points_account (member_id, balance, shortfall)
SELECT m.id, 0, 0
FROM imports_stagedmember s JOIN membership_member m ON m.external_id = s.external_id
WHERE s.job_id = %s AND s.opening_points > 0
ON CONFLICT (member_id) DO NOTHING
"""

INSERT_ENTRIES = f"""
INSERT INTO points_entry
    (account_id, kind, points, source, source_ref, idempotency_key, shortfall, reason, created_at)
SELECT a.id, 'earn', s.opening_points, 'import', s.external_id, '{KEY_PREFIX}' || s.external_id,
       0, %s, %s
FROM imports_stagedmember s
JOIN membership_member m ON m.external_id = s.external_id
JOIN points_account a ON a.member_id = m.id
WHERE s.job_id = %s AND s.opening_points > 0 AND a.shortfall = 0
ON CONFLICT (idempotency_key) DO NOTHING
"""

# The entries this import wrote are those with its key and its exact timestamp.
INSERT_LOTS = f"""
INSERT INTO points_lot (entry_id, account_id, points, remaining, available_at, expires_at)
SELECT e.id, e.account_id, e.points, e.points, %s, %s
FROM imports_stagedmember s
JOIN points_entry e ON e.idempotency_key = '{KEY_PREFIX}' || s.external_id
WHERE s.job_id = %s AND e.created_at = %s
"""

ADD_TO_BALANCES = f"""
UPDATE points_account SET balance = balance + (
    SELECT e.points FROM points_entry e
    JOIN membership_member m ON m.id = points_account.member_id
    WHERE e.idempotency_key = '{KEY_PREFIX}' || m.external_id AND e.created_at = %s
)
WHERE member_id IN (
    SELECT m.id FROM imports_stagedmember s JOIN membership_member m
        ON m.external_id = s.external_id
    WHERE s.job_id = %s AND s.opening_points > 0
) AND EXISTS (
    SELECT 1 FROM points_entry e
    WHERE e.account_id = points_account.id AND e.created_at = %s AND e.source = 'import'
)
"""
