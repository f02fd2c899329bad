"""Configuration of groups and tiers by operators: audited, checked, and followed by a recompute."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count
from django.utils.translation import gettext as _

from membership.models import VipGroup
from membership.outbox import enqueue

from .audit import record_audit

MAX_GROUPS = 5
MAX_TIERS_PER_GROUP = 4


def record_configuration_change(
    *, actor, action: str, before: dict | None, after: dict | None, obj=None, **target
) -> None:
    """Audit one change to the programme and recompute every member after commit.

    The recompute is a follow-up in the outbox, run by the worker (inline when
    Celery is eager) even if the broker is away at the commit; it only writes members
    whose group or tier the new configuration changes.
    """
    if before == after:
        return
    record_audit(actor=actor, action=action, obj=obj, before=before, after=after, **target)
    from membership.display import forget

    # Drag reordering writes with queryset.update(), which sends no signal.
    transaction.on_commit(forget)
    enqueue("membership.tasks.recompute_all_members")


def programme_warnings() -> list[str]:
    """Best practice from the merchant guide: at most 5 groups and 4 tiers a group."""
    warnings = []
    groups = list(VipGroup.objects.annotate(n=Count("tiers")).values_list("name", "n"))
    if len(groups) > MAX_GROUPS:
        warnings.append(
            _("There are %(n)d VIP groups; more than %(max)d is hard for members to follow.")
            % {"n": len(groups), "max": MAX_GROUPS}
        )
    for name, n in groups:
        if n > MAX_TIERS_PER_GROUP:
            warnings.append(
                _("%(group)s has %(n)d tiers; more than %(max)d is hard for members to follow.")
                % {"group": name, "n": n, "max": MAX_TIERS_PER_GROUP}
            )
    return warnings
