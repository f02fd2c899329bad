"""Enterprise accounts. The tier sharing itself is membership's ``set_master_account``."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from membership.models import Cause, Member
from membership.services import change_member_tags, evaluate_member, record_audit, snapshot
from membership.services.members import set_master_account
from membership.services.rules import Mode
from membership.services.tags import tag_named

from .models import Enterprise, Role, SubAccount

DETAIL_FIELDS = [
    "name",
    "business_id",
    "contact_name",
    "contact_phone",
    "contact_email",
    "billing_title",
    "billing_address",
]


def _lock(*member_ids: int) -> None:
    # Masters and members in primary-key order: two moves never wait on each other in a circle.
    list(Member.objects.select_for_update().filter(pk__in=member_ids).order_by("pk"))


def create_enterprise(*, master: Member, actor, **details) -> Enterprise:
    """Create an enterprise whose master is ``master``.

    The master is tagged with the enterprise tag, which moves them to the enterprise
    VIP group at once, ranked under its rules (seed 000's cross-group example).
    """
    with transaction.atomic():
        _lock(master.pk)
        if SubAccount.objects.filter(member=master).exists():
            raise ValidationError(
                {
                    "master": _(
                        "%(name)s is a sub-account; remove them from their enterprise first."
                    )
                    % {"name": master.name}
                }
            )
        enterprise = Enterprise(master=master, **details)
        enterprise.full_clean()
        enterprise.save()
        record_audit(
            actor=actor, action="enterprise.add", obj=enterprise, after=snapshot(enterprise)
        )
        tag = tag_named(settings.B2B_ENTERPRISE_TAG)
        change_member_tags(
            member_id=master.pk, add=[tag], actor=actor, reason=_("Enterprise master account")
        )
        evaluate_member(member_id=master.pk, cause=Cause.ENTERPRISE, actor=actor)
        return enterprise


def update_enterprise(*, enterprise: Enterprise, actor, **details) -> Enterprise:
    with transaction.atomic():
        before = snapshot(
            Enterprise.objects.select_for_update().get(pk=enterprise.pk), DETAIL_FIELDS
        )
        for field, value in details.items():
            setattr(enterprise, field, value)
        enterprise.full_clean()
        enterprise.save()
        after = snapshot(enterprise, DETAIL_FIELDS)
        if before != after:
            record_audit(
                actor=actor, action="enterprise.change", obj=enterprise, before=before, after=after
            )
        return enterprise


def add_sub_account(
    *, enterprise: Enterprise, member: Member, role: Role, actor, reason: str = ""
) -> SubAccount:
    """Make ``member`` a sub-account of ``enterprise``, moving them from another if needed.

    The member shares the master's group and tier from now on and their orders count
    toward the enterprise. Both enterprises are re-evaluated at once: the new one may
    rise; the one left behind is re-ranked on what it still has, as when the order
    that earned a tier is refunded. Audited.
    """
    with transaction.atomic():
        current = SubAccount.objects.select_related("enterprise").filter(member=member).first()
        old = current.enterprise if current else None
        masters = {enterprise.master_id} | ({old.master_id} if old else set())
        _lock(*masters, member.pk)
        if Enterprise.objects.filter(master=member).exists():
            raise ValidationError(
                {
                    "member": _("%(name)s is an enterprise master and cannot be a sub-account.")
                    % {"name": member.name}
                }
            )
        before = {
            "enterprise": old.name if old else None,
            "role": current.role.name if current else None,
        }
        if current is None:
            current = SubAccount(member=member)
        current.enterprise, current.role = enterprise, role
        current.save()
        set_master_account(member_id=member.pk, master_id=enterprise.master_id)
        record_audit(
            actor=actor,
            action="enterprise.sub_account",
            obj=member,
            before=before,
            after={"enterprise": enterprise.name, "role": role.name},
            reason=reason,
        )
        if old is None or old.pk != enterprise.pk:
            evaluate_member(member_id=enterprise.master_id, cause=Cause.ENTERPRISE, actor=actor)
        if old is not None and old.pk != enterprise.pk:
            evaluate_member(
                member_id=old.master_id, mode=Mode.RERANK, cause=Cause.ENTERPRISE, actor=actor
            )
        return current


def remove_sub_account(*, member: Member, actor, reason: str = "") -> None:
    """End a sub-account: the member is ranked on their own again, the enterprise re-ranked."""
    with transaction.atomic():
        current = SubAccount.objects.select_related("enterprise", "role").get(member=member)
        enterprise = current.enterprise
        _lock(enterprise.master_id, member.pk)
        current.delete()
        set_master_account(member_id=member.pk, master_id=None)
        record_audit(
            actor=actor,
            action="enterprise.sub_account",
            obj=member,
            before={"enterprise": enterprise.name, "role": current.role.name},
            after={"enterprise": None, "role": None},
            reason=reason,
        )
        evaluate_member(
            member_id=enterprise.master_id, mode=Mode.RERANK, cause=Cause.ENTERPRISE, actor=actor
        )
        evaluate_member(member_id=member.pk, cause=Cause.ENTERPRISE, actor=actor)
