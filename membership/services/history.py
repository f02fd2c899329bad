"""The tier history: one append-only row per change of a member's group or tier.

The one writer of ``TierHistory``: ``record_tier_change`` for one member,
``record_shared_tier_changes`` for the members sharing a holder's tier,
``record_tier_changes`` for a bulk recompute's table of changes.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection

from api.webhooks import events as webhooks
from membership.models import Cause, Member, TierHistory
from membership.sqlrows import insert_row

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
    refresh_summary: bool = True,
) -> TierHistory | None:
    """Record the move from the given group and tier to the member's current ones.

    Nothing when neither moved. The member is e-mailed about it after the commit.
    ``refresh_summary=False`` is for a caller that refreshes the member's summary itself
    after its other writes, in the same transaction (an evaluation).
    """
    if (member.group_id, member.tier_id) == (from_group_id, from_tier_id):
        return None
    row = TierHistory(
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
    insert_row(row)  # every order that moves a tier writes one: save() took longer
    notify_after_commit()
    webhooks.tier_change_recorded(history_id=row.pk)
    if refresh_summary:
        refresh_member_summaries(member_ids=[member.pk])
    return row


def record_shared_tier_changes(
    *, holder: Member, moved: list[tuple[int, int | None, int | None]], cause: Cause, at, actor=None
) -> int:
    """One row for each member sharing ``holder``'s tier whose group or tier moved with it,
    ``moved`` giving (member id, group id, tier id) from before: written in batches, the
    members e-mailed and the shop's webhooks owed set-based, after the commit.

    A holder with 20,000 sub-accounts moved them one by one, seven statements each: one
    order took 87 s, past any request's time limit. Returns how many rows were written.
    """
    target = (holder.group_id, holder.tier_id)
    rows = [
        TierHistory(
            member_id=member_id,
            from_group_id=group_id,
            from_tier_id=tier_id,
            to_group_id=holder.group_id,
            to_tier_id=holder.tier_id,
            cause=cause,
            actor=actor,
            # The holder by id, not name: history is append-only, and a name must be
            # erasable on request (the member's data rights).
            explanation={"shared_from_member_id": holder.pk},
            created_at=at,
        )
        for member_id, group_id, tier_id in moved
        if (group_id, tier_id) != target
    ]
    TierHistory.objects.bulk_create(rows, batch_size=2000)
    if rows:
        webhooks.tier_history_recorded(
            where="h.member_id IN (SELECT s.id FROM membership_member s "
            "WHERE s.tier_holder_id = %s)",
            params=[holder.pk],
            created_at=connection.ops.adapt_datetimefield_value(at),
            cause=str(cause),
        )
        notify_after_commit()
    return len(rows)


def tier_changes_sql(
    changes: str,
    explanation: str,
    explanation_params: list,
    *,
    cause: Cause,
    actor_id: int | None,
    at,
    notify: bool = True,
    applied: bool = True,
) -> tuple[str, list]:
    """The INSERT of one row for each change of group or tier in ``changes``, set-based.

    ``changes`` has ``id`` (the member), ``old_group``, ``old_tier``, ``new_group``,
    ``new_tier`` and, with ``applied``, ``applied`` (1 where the member was written);
    ``explanation`` is an SQL expression over it (``c``). Without ``notify`` the rows are
    written as already handled (``notified_at`` set), so the e-mail outbox never sends
    them. The one-statement recompute uses it as a CTE over the rows its UPDATE returned.
    """
    # Ids are above zero: 0 stands for "none" so a NULL compares in both SQL dialects.
    return (
        "INSERT INTO membership_tierhistory (member_id, from_group_id, from_tier_id, "
        "to_group_id, to_tier_id, cause, actor_id, reason, explanation, created_at, "
        "notified_at) "
        f"SELECT c.id, c.old_group, c.old_tier, c.new_group, c.new_tier, %s, %s, '', "
        f"{explanation}, %s, {'NULL' if notify else '%s'} FROM {changes} c "
        f"WHERE {'c.applied = 1 AND ' if applied else ''}"
        "(COALESCE(c.new_group, 0) <> COALESCE(c.old_group, 0) "
        "OR COALESCE(c.new_tier, 0) <> COALESCE(c.old_tier, 0))",
        [str(cause), actor_id, *explanation_params, at, *([] if notify else [at])],
    )


def record_tier_changes(
    cursor,
    changes: str,
    explanation: str,
    explanation_params: list,
    *,
    cause: Cause,
    actor_id: int | None,
    at,
    notify: bool = True,
) -> int:
    """Write ``tier_changes_sql``'s rows for the applied changes in the table ``changes``;
    the members are e-mailed and the shop's webhooks owed after the commit. Returns how
    many rows were written."""
    cursor.execute(
        *tier_changes_sql(
            changes,
            explanation,
            explanation_params,
            cause=cause,
            actor_id=actor_id,
            at=at,
            notify=notify,
        )
    )
    written = cursor.rowcount
    if written and notify:
        # The shop hears of the same rows, set-based (what an import writes silently, too).
        webhooks.tier_changes_recorded(changes=changes, created_at=at, cause=str(cause))
        notify_after_commit()
    return written


def announce_tier_changes(*, where: str, params: list, cause: Cause, at) -> None:
    """After rows written by ``tier_changes_sql`` inside a larger statement: e-mail the
    members after the commit and owe the webhooks of the rows ``where`` (on
    ``h.member_id``) finds at that moment and cause."""
    webhooks.tier_history_recorded(where=where, params=params, created_at=at, cause=str(cause))
    notify_after_commit()
