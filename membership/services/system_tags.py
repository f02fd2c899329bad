"""System tags: tags the product sets (segments), never an operator.

A caller names the (member, tag) pairs that should hold with one SELECT; the tags
are made to match within one id range in two set-based statements (four on SQLite),
with a tag history row for every member who enters or leaves. A member moved by a tag that is a
VIP group's entry condition is re-evaluated like any tag change.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.models import Cause, Tag, TagHistory, VipGroup

from .bulk import recompute_members


def ensure_system_tag(*, name: str, description: str) -> Tag:
    tag, created = Tag.objects.get_or_create(
        name=name, defaults={"kind": Tag.Kind.SYSTEM, "description": description}
    )
    if not created and tag.kind != Tag.Kind.SYSTEM:
        raise ValidationError(
            _("The tag %(name)s already exists as an operator tag; rename it first.")
            % {"name": name}
        )
    return tag


def refuse_system_tags(tags) -> None:
    """Operators never add or remove a system tag by hand: the nightly job owns them."""
    names = sorted(t.name for t in tags if t.kind == Tag.Kind.SYSTEM)
    if names:
        raise ValidationError(
            _("%(names)s are system tags, set by the nightly segment job.")
            % {"names": "、".join(names)}
        )


def sync_system_tags(
    *,
    tag_ids: list[int],
    pairs_sql: str,
    params: list,
    id_from: int,
    id_to: int,
    now: dt.datetime | None = None,
    scope_sql: str = "",
    scope_params: list | tuple = (),
) -> int:
    """Make the tags ``tag_ids`` held by exactly the pairs ``pairs_sql`` selects, for member
    ids in [from, to): one statement for those who enter, one for those who leave.

    ``pairs_sql`` is a SELECT of two columns, ``member_id`` and ``tag_id`` (one of
    ``tag_ids``), already limited to the range. ``scope_sql``, a SELECT of member ids,
    limits the members considered at all (the others keep the tags as they hold them);
    ``pairs_sql`` must lie within it. Idempotent: a second run with the same answer
    writes nothing. Returns how many (member, tag) pairs entered or left.
    """
    if not tag_ids:
        return 0
    now = now or timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    wanted = f"({pairs_sql})"
    # The range spelled out on t too: PostgreSQL does not carry it across the anti-join,
    # and would read (and sort or hash) every member's tags for each range.
    holding = (
        "SELECT 1 FROM membership_membertag t "
        "WHERE t.member_id = w.member_id AND t.tag_id = w.tag_id "
        f"AND t.member_id >= {int(id_from)} AND t.member_id < {int(id_to)}"
    )
    listed = ", ".join(str(int(pk)) for pk in tag_ids)
    # NOT EXISTS, not NOT IN: PostgreSQL turns it into an anti-join instead of a subplan
    # rescanned for every row.
    leaving = (
        f"tag_id IN ({listed}) AND member_id >= %s AND member_id < %s AND NOT EXISTS "
        f"(SELECT 1 FROM {wanted} w WHERE w.member_id = {{table}}.member_id "
        "AND w.tag_id = {table}.tag_id)"
    )
    if scope_sql:
        leaving += f" AND member_id IN ({scope_sql})"
    leaving_params = [id_from, id_to, *params, *scope_params]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One pass each way: the rows written feed their history rows. Leaving
            # first: on the first run nobody holds the tags yet, and the pairs just
            # written would be probed with statistics that have not seen them.
            cursor.execute(
                "WITH gone AS (DELETE FROM membership_membertag WHERE "
                + leaving.format(table="membership_membertag")
                + " RETURNING member_id, tag_id) UPDATE membership_taghistory h SET left_at = %s "
                "FROM gone WHERE h.member_id = gone.member_id AND h.tag_id = gone.tag_id "
                "AND h.left_at IS NULL",
                [*leaving_params, stamp],
            )
            left = cursor.rowcount
            cursor.execute(
                "WITH entering AS (INSERT INTO membership_membertag (member_id, tag_id, added_at) "
                f"SELECT w.member_id, w.tag_id, %s FROM {wanted} w WHERE NOT EXISTS ({holding}) "
                "RETURNING member_id, tag_id) "
                "INSERT INTO membership_taghistory (member_id, tag_id, entered_at) "
                "SELECT member_id, tag_id, %s FROM entering",
                [stamp, *params, stamp],
            )
            entered = cursor.rowcount
        else:
            cursor.execute(
                "INSERT INTO membership_taghistory (member_id, tag_id, entered_at) "
                f"SELECT w.member_id, w.tag_id, %s FROM {wanted} w WHERE NOT EXISTS ({holding})",
                [stamp, *params],
            )
            entered = cursor.rowcount
            cursor.execute(
                "INSERT INTO membership_membertag (member_id, tag_id, added_at) "
                f"SELECT w.member_id, w.tag_id, %s FROM {wanted} w WHERE NOT EXISTS ({holding})",
                [stamp, *params],
            )
            cursor.execute(
                "UPDATE membership_taghistory SET left_at = %s WHERE left_at IS NULL AND "
                + leaving.format(table="membership_taghistory"),
                [stamp, *leaving_params],
            )
            left = cursor.rowcount
            cursor.execute(
                "DELETE FROM membership_membertag WHERE "
                + leaving.format(table="membership_membertag"),
                leaving_params,
            )
        entry_tags = list(
            VipGroup.entry_tags.through.objects.filter(tag_id__in=tag_ids)
            .values_list("tag_id", flat=True)
            .distinct()
        )
        if (entered or left) and entry_tags:
            moved = TagHistory.objects.filter(
                tag_id__in=entry_tags, member_id__gte=id_from, member_id__lt=id_to
            )
            changed = set(moved.filter(entered_at=now).values_list("member_id", flat=True))
            changed |= set(moved.filter(left_at=now).values_list("member_id", flat=True))
            recompute_members(member_ids=changed, cause=Cause.TAG, now=now)
    return entered + left
