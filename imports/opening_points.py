"""Opening points balances: one ledger entry per member, keyed so a second import adds nothing.

The key is per member (``import-opening:<external id>``), not per file: a corrected file
imported later cannot give a member a second opening balance. A different amount under the
same key is refused at the check, row by row.
"""

from __future__ import annotations

from django.db.models import CharField, F, OuterRef, Subquery, Value
from django.db.models.functions import Concat
from django.utils.translation import gettext as _

from membership.models import Member
from points.ledger import earn_many
from points.models import Entry

from .models import Problem, StagedMember, StagedTag

# The source of what an import writes: its opening orders, tier grants and points.
SOURCE = "import"
KEY_PREFIX = "import-opening:"
REASON = "opening balance from import"


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
    """Every staged opening balance, posted set-based through the ledger's ``earn_many``."""
    rows = StagedMember.objects.filter(job=job, opening_points__gt=0).values(
        member_id=Subquery(
            Member.objects.filter(external_id=OuterRef("external_id")).values("pk")[:1]
        ),
        points=F("opening_points"),
        ref=F("external_id"),
        key=Concat(Value(KEY_PREFIX), F("external_id"), output_field=CharField()),
    )
    earn_many(rows, source=SOURCE, reason=REASON, now=now)
