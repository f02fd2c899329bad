"""Tell members about changes of group or tier, by e-mail, from the history outbox.

Every history row starts unnotified; this drains them in batches. Rows are claimed
with SELECT … FOR UPDATE SKIP LOCKED so that several workers never send the same
e-mail; a row is marked before sending (at most once, never twice).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from membership.models import TierHistory
from membership.outbox import enqueue

BATCH = 500


def _claim_batch() -> list[TierHistory]:
    with transaction.atomic():
        rows = list(
            TierHistory.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(notified_at__isnull=True)
            .select_related("member", "from_group", "from_tier", "to_group", "to_tier")
            .order_by("id")[:BATCH]
        )
        TierHistory.objects.filter(pk__in=[r.pk for r in rows]).update(notified_at=timezone.now())
    return rows


def notify_after_commit() -> None:
    """Owe a drain of the unnotified rows, as a follow-up in the current transaction."""
    enqueue("membership.tasks.send_tier_notifications")


def send_tier_notifications() -> int:
    """Send every pending tier-change e-mail. Returns how many rows were handled."""
    handled = 0
    while rows := _claim_batch():
        for row in rows:
            if row.member.email:
                send_tier_change_email(row)
        handled += len(rows)
    return handled


def send_tier_change_email(row: TierHistory) -> None:
    email_member(
        member=row.member,
        template="membership/email/tier_changed.{language}.txt",
        subject_template="membership/email/tier_changed.{language}.subject.txt",
        context=lambda: {"change": row, "cause": row.get_cause_display()},
    )


def email_member(
    *,
    member,
    template: str,
    context: Callable[[], dict] | dict,
    subject_template: str | None = None,
) -> bool:
    """E-mail ``member`` in their language. Returns False, sending nothing, without an address.

    ``{language}`` in a template name is the member's language. The context (a dict, or a
    function giving one, called in that language) gets ``member`` too. Without a subject
    template the body's first line is the subject.
    """
    if not member.email:
        return False
    language = member.language or settings.LANGUAGE_CODE
    with translation.override(language):
        values = {"member": member, **(context() if callable(context) else context)}
        body = render_to_string(template.format(language=language), values)
        if subject_template is None:
            subject, _sep, text = body.strip().partition("\n")
            text = text.strip()
        else:
            subject = render_to_string(subject_template.format(language=language), values)
            text = body
    send_mail(subject.strip(), text, settings.DEFAULT_FROM_EMAIL, [member.email])
    return True
