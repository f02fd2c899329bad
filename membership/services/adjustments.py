"""Manual tier adjustments by staff: a reason is required; a lock is optional."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.models import Cause, Member, Tier

from .audit import record_audit, snapshot
from .evaluation import best_active_grant_rank, lock_member, member_metrics
from .history import record_tier_change
from .rules import WindowBounds, add_months, load_programme, resolve_group, upgrade_rank
from .summary import refresh_member_summaries

AUDITED_FIELDS = ["group", "earned_tier", "tier", "locked_tier", "locked_until"]


def adjust_tier(
    *,
    member_id: int,
    tier: Tier,
    reason: str,
    actor,
    locked_until: dt.date | None = None,
) -> Member:
    """Set a member's tier by hand, optionally locking it until a date.

    Without a lock the chosen tier becomes the earned tier and the rules move it from
    there (upgrades at once on an order, falls at review); it must then be a tier of
    the group the member qualifies for. With a lock the member is pinned to the
    tier's group and evaluation never takes them below it before the date, while the
    earned tier stays what the rules give (so reaching a tier by spending later is still
    an upgrade, with its gift). Active
    grants can still lift the effective tier. No gift is issued by hand. Writes a
    history row (if anything changed) and an audit entry with the reason.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("A manual adjustment needs a reason.")})
    now = timezone.now()
    today = timezone.localdate(now)
    if locked_until is not None and locked_until < today:
        raise ValidationError({"locked_until": _("The lock must end today or later.")})
    with transaction.atomic():
        member = lock_member(member_id)
        if member.tier_holder_id:
            raise ValidationError(
                _(
                    "%(name)s is a sub-account sharing the tier of the master account "
                    "%(master)s; adjust %(master)s instead."
                )
                % {"name": member.name, "master": member.tier_holder.name}
            )
        programme = load_programme()
        if locked_until is None:
            tag_ids = frozenset(member.member_tags.values_list("tag_id", flat=True))
            qualifying, _checks = resolve_group(
                programme, tag_ids, member_metrics(member.pk, WindowBounds(now))
            )
            if qualifying is None or qualifying.id != tier.group_id:
                raise ValidationError(
                    {
                        "locked_until": _(
                            "This member does not qualify for %(group)s, so the rules would move "
                            "them back at once. Lock the tier until a date to keep them there."
                        )
                        % {"group": tier.group.name}
                    }
                )
        before = snapshot(member, AUDITED_FIELDS)
        old_group_id, old_tier_id = member.group_id, member.tier_id
        group_rule = programme.group(tier.group_id)
        grant_rank = best_active_grant_rank(member, group_rule, now)
        if locked_until is None:
            earned = tier
        elif tier.group_id == member.group_id:
            # A lock above what the rules gave is a floor over it (the earned tier stays,
            # so reaching the tier by spending later is an upgrade with its gift); a lock
            # below it is a demotion, and the earned tier comes down with it.
            current = member.earned_tier
            earned = tier if current is None or tier.rank < current.rank else current
        else:
            # Pinned to another group: ranked afresh there, as a tag move would.
            metrics = member_metrics(member.pk, WindowBounds(now))
            rank = upgrade_rank(group_rule, metrics.of(group_rule.metric, group_rule.window))
            earned = Tier.objects.filter(group_id=tier.group_id, rank=rank).first()
        earned_rank = earned.rank if earned is not None else 0
        effective = group_rule.tier_at(max(tier.rank, earned_rank, grant_rank))

        member.group_id = tier.group_id
        if getattr(earned, "pk", None) != member.earned_tier_id:
            member.earned_tier = earned
            member.tier_earned_by_order = None
        member.tier_id = effective.id
        member.next_review_on = add_months(today, group_rule.review_months)
        member.locked_tier = tier if locked_until else None
        member.locked_until = locked_until
        if member.tier_id != old_tier_id:
            member.tier_since = now
        member.save()

        record_tier_change(
            member=member,
            from_group_id=old_group_id,
            from_tier_id=old_tier_id,
            cause=Cause.MANUAL,
            actor=actor,
            reason=reason,
            explanation={
                "manual": True,
                "locked_until": locked_until.isoformat() if locked_until else None,
            },
            at=now,
        )
        refresh_member_summaries(member_ids=[member.pk])  # the review date moves too
        record_audit(
            actor=actor,
            action="member.adjust_tier",
            obj=member,
            before=before,
            after=snapshot(member, AUDITED_FIELDS),
            reason=reason,
        )
        return member
