"""Tags on members. A tag change can move a member to another group at once."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from membership.models import Cause, Member, MemberTag, Tag

from .audit import Audited, record_audit, record_audits
from .evaluation import EvaluationResult, evaluate_member, lock_member
from .rules import Mode
from .system_tags import refuse_system_tags


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
    refuse_system_tags([*add, *remove])
    names = {t.pk: t.name for t in [*add, *remove, *(replace_with or [])]}
    with transaction.atomic():
        member = lock_member(member_id)
        current = dict(member.member_tags.values_list("tag_id", "tag__name"))
        if replace_with is not None:
            # A form that replaces the operator's tags keeps the segments' system tags as
            # they are, whatever it sent for them.
            system = set(
                member.member_tags.filter(tag__kind=Tag.Kind.SYSTEM).values_list(
                    "tag_id", flat=True
                )
            )
            wanted = {t.pk for t in replace_with if t.kind != Tag.Kind.SYSTEM} | system
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


def change_tag_for_members(
    *, member_ids: Iterable[int], tag: Tag, add: bool, actor=None, reason: str = ""
):
    """Add or remove one tag on many members at once, set-based, in one transaction.

    Only members whose tags actually change get an audit entry (their tag names before
    and after) and are re-evaluated, through the set-based recompute.
    """
    from .bulk import recompute_members

    refuse_system_tags([tag])
    ids = sorted(set(member_ids))
    with transaction.atomic():
        holding = set()
        for i in range(0, len(ids), 5000):
            holding |= set(
                MemberTag.objects.filter(member_id__in=ids[i : i + 5000], tag=tag).values_list(
                    "member_id", flat=True
                )
            )
        affected = [i for i in ids if (i not in holding) == add]
        before: dict[int, list[str]] = {i: [] for i in affected}
        names = {}
        for i in range(0, len(affected), 5000):
            part = affected[i : i + 5000]
            for member_id, name in MemberTag.objects.filter(member_id__in=part).values_list(
                "member_id", "tag__name"
            ):
                before[member_id].append(name)
            names.update(Member.objects.filter(pk__in=part).values_list("pk", "name"))
            if add:
                MemberTag.objects.bulk_create(
                    [MemberTag(member_id=m, tag=tag) for m in part], ignore_conflicts=True
                )
            else:
                MemberTag.objects.filter(member_id__in=part, tag=tag).delete()
        record_audits(
            actor=actor,
            action="member.tags",
            object_type="membership.member",
            changes=(
                Audited(
                    object_id=str(m),
                    object_repr=names.get(m, ""),
                    before={"tags": sorted(before[m])},
                    after={
                        "tags": sorted(
                            [*before[m], tag.name] if add else set(before[m]) - {tag.name}
                        )
                    },
                )
                for m in affected
            ),
            reason=reason,
        )
        result = recompute_members(member_ids=affected, cause=Cause.TAG, actor=actor)
    return len(affected), result


def tag_named(name: str) -> Tag:
    """The tag called ``name``, created if no tag has that name yet."""
    tag, _created = Tag.objects.get_or_create(name=name)
    return tag
