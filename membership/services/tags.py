"""Tags on members. A tag change can move a member to another group at once."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from membership.models import Cause, MemberTag, Tag

from .audit import record_audit
from .evaluation import EvaluationResult, evaluate_member, lock_member
from .rules import Mode


def change_member_tags(
    *,
    member_id: int,
    add: Iterable[Tag] = (),
    remove: Iterable[Tag] = (),
    replace_with: Iterable[Tag] | None = None,
    actor=None,
    reason: str = "",
) -> EvaluationResult | None:
    """Add, remove or replace a member's tags under the member's row lock.

    Audits the before/after tag names and re-evaluates the member at once (a tag
    can move them to another group). Returns None when nothing changed.
    """
    names = {t.pk: t.name for t in [*add, *remove, *(replace_with or [])]}
    with transaction.atomic():
        member = lock_member(member_id)
        current = dict(member.member_tags.values_list("tag_id", "tag__name"))
        if replace_with is not None:
            wanted = {t.pk for t in replace_with}
        else:
            wanted = (set(current) | {t.pk for t in add}) - {t.pk for t in remove}
        to_add = wanted - set(current)
        to_remove = set(current) - wanted
        if not to_add and not to_remove:
            return None
        MemberTag.objects.filter(member=member, tag_id__in=to_remove).delete()
        MemberTag.objects.bulk_create(
            [MemberTag(member=member, tag_id=tid) for tid in sorted(to_add)], ignore_conflicts=True
        )
        names.update(current)
        record_audit(
            actor=actor,
            action="member.tags",
            obj=member,
            before={"tags": sorted(current.values())},
            after={"tags": sorted(names[tid] for tid in wanted)},
            reason=reason,
        )
        return evaluate_member(member_id=member.pk, mode=Mode.UPGRADE, cause=Cause.TAG, actor=actor)


def add_tag(*, member_id: int, tag: Tag, actor=None, reason: str = "") -> EvaluationResult | None:
    return change_member_tags(member_id=member_id, add=[tag], actor=actor, reason=reason)


def remove_tag(
    *, member_id: int, tag: Tag, actor=None, reason: str = ""
) -> EvaluationResult | None:
    return change_member_tags(member_id=member_id, remove=[tag], actor=actor, reason=reason)
