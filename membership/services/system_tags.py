"""System tags: tags the product sets (segments), never an operator.

A caller names the members who should hold a tag with a SELECT of member ids; the
tag is made to match within one id range in four set-based statements, with a tag
history row for every member who enters or leaves. A member moved by a tag that is a
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


def sync_system_tag(
    *,
    tag: Tag,
    members_sql: str,
    params: list,
    id_from: int,
    id_to: int,
    now: dt.datetime | None = None,
    scope_sql: str = "",
    scope_params: list | tuple = (),
) -> int:
    """Make ``tag`` held by exactly the members ``members_sql`` selects, for ids in [from, to).

    ``members_sql`` is a SELECT of one column, member ids, already limited to the range.
    ``scope_sql``, a SELECT of member ids, limits the members considered at all (the
    others keep the tag as they hold it); ``members_sql`` must lie within it.
    Idempotent: a second run with the same answer writes nothing. Returns how many
    members entered or left.
    """
    now = now or timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    wanted = f"({members_sql})"
    holding = (
        "SELECT 1 FROM membership_membertag t WHERE t.member_id = w.member_id AND t.tag_id = %s"
    )
    # NOT EXISTS, not NOT IN: PostgreSQL turns it into an anti-join instead of a subplan
    # rescanned for every row.
    leaving = (
        "tag_id = %s AND member_id >= %s AND member_id < %s AND NOT EXISTS "
        f"(SELECT 1 FROM {wanted} w WHERE w.member_id = {{table}}.member_id)"
    )
    if scope_sql:
        leaving += f" AND member_id IN ({scope_sql})"
    leaving_params = [*params, *scope_params]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One pass each way: the rows written feed their history rows.
            cursor.execute(
                "WITH entering AS (INSERT INTO membership_membertag (member_id, tag_id, added_at) "
                f"SELECT w.member_id, %s, %s FROM {wanted} w WHERE NOT EXISTS ({holding}) "
                "RETURNING member_id) "
                "INSERT INTO membership_taghistory (member_id, tag_id, entered_at) "
                "SELECT member_id, %s, %s FROM entering",
                [tag.pk, stamp, *params, tag.pk, tag.pk, stamp],
            )
            entered = cursor.rowcount
            cursor.execute(
                "WITH gone AS (DELETE FROM membership_membertag WHERE "
                + leaving.format(table="membership_membertag")
                + " RETURNING member_id) UPDATE membership_taghistory h SET left_at = %s "
                "FROM gone WHERE h.member_id = gone.member_id AND h.tag_id = %s "
                "AND h.left_at IS NULL",
                [tag.pk, id_from, id_to, *leaving_params, stamp, tag.pk],
            )
            left = cursor.rowcount
        else:
            cursor.execute(
                "INSERT INTO membership_taghistory (member_id, tag_id, entered_at) "
                f"SELECT w.member_id, %s, %s FROM {wanted} w WHERE NOT EXISTS ({holding})",
                [tag.pk, stamp, *params, tag.pk],
            )
            entered = cursor.rowcount
            cursor.execute(
                "INSERT INTO membership_membertag (member_id, tag_id, added_at) "
                f"SELECT w.member_id, %s, %s FROM {wanted} w WHERE NOT EXISTS ({holding})",
                [tag.pk, stamp, *params, tag.pk],
            )
            cursor.execute(
                "UPDATE membership_taghistory SET left_at = %s WHERE left_at IS NULL AND "
                + leaving.format(table="membership_taghistory"),
                [stamp, tag.pk, id_from, id_to, *leaving_params],
            )
            left = cursor.rowcount
            cursor.execute(
                "DELETE FROM membership_membertag WHERE "
                + leaving.format(table="membership_membertag"),
                [tag.pk, id_from, id_to, *leaving_params],
            )
        if (entered or left) and VipGroup.objects.filter(entry_tags=tag).exists():
            moved = TagHistory.objects.filter(tag=tag, member_id__gte=id_from, member_id__lt=id_to)
            changed = set(moved.filter(entered_at=now).values_list("member_id", flat=True))
            changed |= set(moved.filter(left_at=now).values_list("member_id", flat=True))
            recompute_members(member_ids=changed, cause=Cause.TAG, now=now)
    return entered + left
