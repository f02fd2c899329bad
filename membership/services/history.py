"""The tier history: one append-only row per change of a member's group or tier.

The one writer of ``TierHistory``: ``record_tier_change`` for one member,
``record_tier_changes`` for a bulk recompute's table of changes.
"""

from __future__ import annotations

import datetime as dt

from membership.models import Cause, Member, TierHistory

from .notifications import notify_after_commit


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
    return row


def record_tier_changes(
    cursor,
    changes: str,
    explanation: str,
    explanation_params: list,
    *,
    cause: Cause,
    actor_id: int | None,
    at: dt.datetime,
    notify: bool = True,
) -> int:
    """One row for each applied change of group or tier in the table ``changes``, set-based.

    ``changes`` has ``id`` (the member), ``old_group``, ``old_tier``, ``new_group``,
    ``new_tier`` and ``applied`` (1 where the member was written); ``explanation`` is an
    SQL expression over it (``c``). The members are e-mailed after the commit; without
    ``notify`` the rows are written as already handled (``notified_at`` set), so the
    e-mail outbox never sends them. Returns how many rows were written.
    """
    # Ids are above zero: 0 stands for "none" so a NULL compares in both SQL dialects.
    cursor.execute(
        "INSERT INTO membership_tierhistory (member_id, from_group_id, from_tier_id, "
        "to_group_id, to_tier_id, cause, actor_id, reason, explanation, created_at, "
        "notified_at) "
        f"SELECT c.id, c.old_group, c.old_tier, c.new_group, c.new_tier, %s, %s, '', "
        f"{explanation}, %s, {'NULL' if notify else '%s'} FROM {changes} c "
        "WHERE c.applied = 1 AND (COALESCE(c.new_group, 0) <> COALESCE(c.old_group, 0) "
        "OR COALESCE(c.new_tier, 0) <> COALESCE(c.old_tier, 0))",
        [str(cause), actor_id, *explanation_params, at, *([] if notify else [at])],
    )
    if cursor.rowcount and notify:
        notify_after_commit()
    return cursor.rowcount
