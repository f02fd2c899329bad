"""The rules a programme's configuration must keep, across groups and across tiers.

What one row can say (a discount from 0 to 100 %, a colour as #RRGGBB, retention not
above upgrade, a review period of at least one month, a value within its column) is
said by the model's validators and constraints. What only several rows can say is
here, and every way of changing configuration (the admin's forms, the drag-ordered
list, scripts) goes through it:

- within a VIP group, each tier's upgrade threshold is strictly above the tier ranked
  below it, and its retention threshold is not below that tier's retention threshold;
- the default group is checked last, so it is last in the priority list whatever the
  operator drags.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from membership.bounds import column_range
from membership.models import Tier, VipGroup

from .configuration import record_configuration_change


@dataclass(frozen=True)
class Rung:
    """One tier of a group's ladder as it would be saved; ``key`` names it to the caller.

    A threshold is None when the form could not read it (its own error is shown).
    """

    key: object
    rank: int
    name: str
    upgrade_threshold: int | None
    retention_threshold: int | None


@dataclass(frozen=True)
class LadderProblem:
    """A tier (``key``) whose field breaks the ladder, and why, in the operator's words."""

    key: object
    field: str
    message: str


def ladder_problems(rungs: Iterable[Rung]) -> list[LadderProblem]:
    """What is wrong with a group's tiers taken together, reported on the higher tier.

    Upgrade thresholds rise strictly with rank; retention thresholds never fall as rank
    rises. Ranks that repeat are the unique constraint's to report, not this.
    """
    ladder = sorted(rungs, key=lambda r: r.rank)
    problems = []
    for lower, higher in zip(ladder, ladder[1:], strict=False):
        if higher.rank == lower.rank:
            continue
        if _at_or_below(higher.upgrade_threshold, lower.upgrade_threshold):
            problems.append(
                LadderProblem(
                    higher.key,
                    "upgrade_threshold",
                    _(
                        "%(tier)s's upgrade threshold (%(value)s) must be above that of "
                        "%(lower)s, the tier ranked below it (%(lower_value)s)."
                    )
                    % {
                        "tier": higher.name,
                        "value": f"{higher.upgrade_threshold:,}",
                        "lower": lower.name,
                        "lower_value": f"{lower.upgrade_threshold:,}",
                    },
                )
            )
        if _below(higher.retention_threshold, lower.retention_threshold):
            problems.append(
                LadderProblem(
                    higher.key,
                    "retention_threshold",
                    _(
                        "%(tier)s's retention threshold (%(value)s) cannot be below that of "
                        "%(lower)s, the tier ranked below it (%(lower_value)s)."
                    )
                    % {
                        "tier": higher.name,
                        "value": f"{higher.retention_threshold:,}",
                        "lower": lower.name,
                        "lower_value": f"{lower.retention_threshold:,}",
                    },
                )
            )
    return problems


def _at_or_below(value: int | None, other: int | None) -> bool:
    return value is not None and other is not None and value <= other


def _below(value: int | None, other: int | None) -> bool:
    return value is not None and other is not None and value < other


def rung_of(tier: Tier, *, key: object = None) -> Rung:
    return Rung(
        key=tier.pk if key is None else key,
        rank=tier.rank,
        name=tier.name,
        upgrade_threshold=tier.upgrade_threshold,
        retention_threshold=tier.retention_threshold,
    )


def tier_ladder_problems(
    *, group: VipGroup, proposed: Iterable[Rung] = (), removed: Iterable[object] = ()
) -> list[LadderProblem]:
    """The ladder's problems once ``proposed`` tiers replace (by pk key) or join the saved ones.

    A proposed rung whose key is a saved tier's pk stands in for that tier; any other key
    is a new tier. ``removed`` lists the pks of tiers about to be deleted. An unsaved
    ``group`` (the add page) has no saved tiers: only the proposed ones count.
    """
    proposed = list(proposed)
    replaced = {r.key for r in proposed} | set(removed)
    tiers = Tier.objects.filter(group=group) if group.pk else Tier.objects.none()
    saved = [rung_of(t) for t in tiers if t.pk not in replaced]
    return ladder_problems([*saved, *proposed])


def check_tier_ladder(
    *, group: VipGroup, proposed: Iterable[Rung] = (), removed: Iterable[object] = ()
) -> None:
    """Raise a ValidationError, by field, when the group's tiers would break the ladder."""
    errors: dict[str, list[str]] = {}
    for problem in tier_ladder_problems(group=group, proposed=proposed, removed=removed):
        errors.setdefault(problem.field, []).append(problem.message)
    if errors:
        raise ValidationError(errors)


def priority_value(value: object) -> int:
    """A priority as it may be stored: a whole number within its column, else a message."""
    low, high = column_range(VipGroup._meta.get_field("priority"))
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(_("A priority is a whole number."), code="invalid")
    try:
        number = int(value)
    except ValueError:
        raise ValidationError(_("A priority is a whole number."), code="invalid") from None
    if not low <= number <= high:
        raise ValidationError(
            _("A priority is between %(low)s and %(high)s.") % {"low": low, "high": f"{high:,}"},
            code="out_of_range",
        )
    return number


def _groups_in_checking_order(requested: Mapping[int, int]) -> list[VipGroup]:
    """Every group, locked, in the order they are checked: requested priorities win,
    ties keep the old order, the default group comes last."""
    groups = list(VipGroup.objects.select_for_update().order_by("pk"))
    return sorted(
        groups,
        key=lambda g: (g.is_default, requested.get(g.pk, g.priority), g.priority, g.pk),
    )


def _renumber(groups: list[VipGroup]) -> None:
    """Priorities 1, 2, 3 … in this order; only the rows that change are written."""
    for position, group in enumerate(groups, start=1):
        if group.priority != position:
            VipGroup.objects.filter(pk=group.pk).update(priority=position)
            group.priority = position


def pin_default_group_last() -> None:
    """Renumber the groups 1…n in their order, the default group last (after an add or
    a change of the default); no audit entry: the operator's own save is the change."""
    with transaction.atomic():
        _renumber(_groups_in_checking_order({}))


def reorder_groups(*, actor, priorities: Mapping[object, object]) -> list[str]:
    """Give groups the priorities the operator dragged them to; the default group stays last.

    ``priorities`` maps a group's pk to its new priority, as the drag-ordered list sends
    them. Every value is checked before anything is written: an unknown group, or a
    priority that is not a whole number within its column, is a ValidationError and
    nothing changes. The stored priorities are then renumbered 1…n (so no drag can
    leave a gap, a tie or an overflow behind), audited as one reorder, and members are
    recomputed after commit when the order changed. Returns the group names in order.
    """
    requested: dict[int, int] = {}
    for pk, value in priorities.items():
        try:
            group_pk = int(pk)
        except (TypeError, ValueError):
            raise ValidationError(_("Unknown VIP group: %s") % pk, code="unknown") from None
        requested[group_pk] = priority_value(value)
    with transaction.atomic():
        groups = _groups_in_checking_order(requested)
        before = [g.name for g in sorted(groups, key=lambda g: (g.priority, g.pk))]
        unknown = set(requested) - {g.pk for g in groups}
        if unknown:
            raise ValidationError(
                _("Unknown VIP group: %s") % ", ".join(map(str, sorted(unknown))), code="unknown"
            )
        _renumber(groups)
        after = [g.name for g in groups]
        record_configuration_change(
            actor=actor,
            action="vipgroup.reorder",
            object_type="membership.vipgroup",
            object_id="*",
            object_repr=_("VIP group priority"),
            before={"priority": before},
            after={"priority": after},
        )
    return after
