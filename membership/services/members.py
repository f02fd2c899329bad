"""Members reported by the shop: created or updated by their external id."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from membership.models import Cause, Member

from .audit import record_audit, snapshot
from .evaluation import evaluate_member

UPSERTED_FIELDS = ["name", "phone", "email", "birthday", "language"]


@dataclass
class UpsertResult:
    member: Member
    created: bool


def upsert_member(
    *,
    external_id: str,
    name: str,
    phone: str = "",
    email: str = "",
    birthday: dt.date | None = None,
    language: str = Member.Language.ZH_HANT,
    joined_at: dt.datetime | None = None,
    actor=None,
) -> UpsertResult:
    """Create the member with this external id, or update their details.

    Idempotent: the same details again change and audit nothing. A new member is
    placed in their group and tier at once. Audited (``member.add`` / ``member.change``
    with the changed fields). Two callers creating the same id at once make one member.
    """
    details = {
        "name": name,
        "phone": phone,
        "email": email,
        "birthday": birthday,
        "language": language,
    }
    with transaction.atomic():
        member = Member.objects.select_for_update().filter(external_id=external_id).first()
        if member is None:
            try:
                with transaction.atomic():
                    member = Member(
                        external_id=external_id, joined_at=joined_at or timezone.now(), **details
                    )
                    # The unique id is the database's to check: a racing creator is caught below.
                    member.full_clean(validate_unique=False)
                    member.save()
            except IntegrityError:
                # Another caller created it first: update theirs instead.
                member = Member.objects.select_for_update().get(external_id=external_id)
            else:
                record_audit(actor=actor, action="member.add", obj=member, after=snapshot(member))
                # Tier history names a login or no one; an API integration is in the audit.
                user = actor if getattr(actor, "pk", None) else None
                evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE, actor=user)
                member.refresh_from_db()
                return UpsertResult(member=member, created=True)
        changed = [f for f, value in details.items() if getattr(member, f) != value]
        if changed:
            before = snapshot(member, changed)
            for field in changed:
                setattr(member, field, details[field])
            member.full_clean()
            member.save(update_fields=changed)
            record_audit(
                actor=actor,
                action="member.change",
                obj=member,
                before=before,
                after=snapshot(member, changed),
            )
        return UpsertResult(member=member, created=False)


def set_master_account(*, member_id: int, master_id: int | None) -> None:
    """Make ``member_id`` a sub-account sharing the tier of ``master_id``, or (``None``) a
    member ranked on their own again. The caller holds both members' row locks and
    evaluates them (b2b's sub-account services)."""
    Member.objects.filter(pk=member_id).update(tier_holder_id=master_id)
