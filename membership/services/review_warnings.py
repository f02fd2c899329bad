"""The review warning (等級保留提醒): a nudge before a review that would lower the tier.

A set number of days before a member's review (the group's ``review_warning_days``,
30 by default, 0 for none), a member whose metric is below their earned tier's
retention threshold gets a nudge of kind ``review_warning`` whose period is the review
date and whose amount is what is still needed. The value is the one the member page's
"Keeping your tier" card shows: what the member's purchases (or growth points) so far
will still count for on the review day, when a rolling window has moved on.

Set-based: per group, one INSERT … SELECT per review date inside the warning window
(today's job warns the members reviewed in ``days`` days; the later dates catch members
a missed run or a longer setting left out). The unique (member, kind, period) makes it
once per member and review; the e-mail goes out through the outbox.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone

from membership.models import Member, NudgeKind, VipGroup
from membership.outbox import enqueue
from membership.sqltime import to_db

from .nudges import _values
from .rules import WindowBounds

WARN = (
    "INSERT INTO membership_nudge (member_id, kind, period, tier_id, amount, created_at) "
    "SELECT m.id, %s, %s, t.id, t.retention_threshold - COALESCE(s.value, 0), %s "
    "FROM membership_member m JOIN membership_tier t ON t.id = m.earned_tier_id "
    "LEFT JOIN ({values}) s ON s.holder = m.id "
    "WHERE m.group_id = %s AND m.tier_holder_id IS NULL AND m.next_review_on = %s "
    "AND COALESCE(s.value, 0) < t.retention_threshold "
    "ON CONFLICT (member_id, kind, period) DO NOTHING"
)


def review_moment(day: dt.date) -> dt.datetime:
    """Noon on the review day: the moment whose windows the review will count in."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time(12)))


def compute_review_warnings(*, now: dt.datetime | None = None) -> int:
    """Warn every member due a review soon who is below their retention threshold.

    Idempotent: a second run (the same day or any later day before the review) adds
    nothing. Owes one e-mail run after commit when it warned anyone. Returns how many
    warnings are new.
    """
    now = now or timezone.now()
    today = timezone.localdate(now)
    stamp = to_db(now)
    created = 0
    groups = VipGroup.objects.filter(review_warning_days__gt=0).values_list(
        "id", "metric", "window", "review_warning_days"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        for group_id, metric, window, days in groups:
            due = (
                Member.objects.filter(
                    group_id=group_id,
                    tier_holder__isnull=True,
                    earned_tier__isnull=False,
                    next_review_on__gt=today,
                    next_review_on__lte=today + dt.timedelta(days=days),
                )
                .order_by("next_review_on")
                .values_list("next_review_on", flat=True)
                .distinct()
            )
            for review_on in due:
                start = WindowBounds(review_moment(review_on)).start(window)
                values, value_params = _values(group_id, metric, start)
                cursor.execute(
                    WARN.format(values=values),
                    [
                        NudgeKind.REVIEW_WARNING.value,
                        review_on.isoformat(),
                        stamp,
                        *value_params,
                        group_id,
                        connection.ops.adapt_datefield_value(review_on),
                    ],
                )
                created += max(cursor.rowcount, 0)
        if created:
            enqueue("membership.tasks.send_nudges")
    return created
