"""The tier history: one append-only row per change of a member's group or tier."""

from __future__ import annotations

import datetime as dt

from membership.models import Cause, Member, TierHistory

from .notifications import notify_after_commit
from .summary import refresh_member_summaries


def record_tier_change(
    *,
    member: Member,
    from_group_id: int | None,
    from_tier_id: int | None,
    cause: Cause,
    explanation: dict,
    at: dt.datetime,
    actor=None,
    reason: str = "",
) -> TierHistory | None:
    """Record the move from the given group and tier to the member's current ones.

    Nothing when neither moved. The member is e-mailed about it after the commit.
    """
    if (member.group_id, member.tier_id) == (from_group_id, from_tier_id):
        return None
    row = TierHistory.objects.create(
        member=member,
        from_group_id=from_group_id,
        from_tier_id=from_tier_id,
        to_group_id=member.group_id,
        to_tier_id=member.tier_id,
        cause=cause,
        actor=actor,
        reason=reason,
        explanation=explanation,
        created_at=at,
    )
    notify_after_commit()
    refresh_member_summaries(member_ids=[member.pk])
    return row
