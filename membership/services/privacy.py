"""The member's data rights (Taiwan's Personal Data Protection Act, art. 3, 10 and 11).

- A copy of their data (art. 10): `export_member_data` builds one zip of CSV files —
  profile, orders, refunds, points entries, tier history, gifts, subscriptions — the same
  for the member's own download on /me/ and for an operator answering a request made
  elsewhere. CSV, not JSON, because the member opens it in a spreadsheet: UTF-8 with a
  BOM (Excel reads the Chinese), text that a spreadsheet would run as a formula is
  escaped, and the files inside the zip have ASCII names that every unzip tool reads.
- Erasure (art. 11): `erase_member` replaces who the member is — name, phone, e-mail,
  birthday, the login — and keeps what happened: orders and their amounts, the points
  ledger, tier history and the audit trail stay whole, so totals, balances and
  `check_points` still agree.

Both are audited (`member.data_export`, `member.erase`).
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from decimal import Decimal

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from imports.exports import escape
from membership.models import AuditEntry, GiftIssue, Member, Order, Refund, TierHistory
from points.models import Entry
from subscriptions.models import Subscription

from .audit import record_audit, snapshot

ERASED_FIELDS = ["name", "phone", "email", "birthday"]


@dataclass(frozen=True)
class DataExport:
    filename: str
    content: bytes


def export_member_data(*, member_id: int, actor, reason: str = "") -> DataExport:
    """A zip of everything stored about one member, and an audit entry saying who took it.

    Only rows of this member are read. Nothing but the audit entry is written."""
    with transaction.atomic():
        member = Member.objects.select_related("group", "tier", "user").get(pk=member_id)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, (header, rows) in _member_tables(member).items():
                archive.writestr(name, _csv(header, rows))
        is_self = actor is not None and actor.pk is not None and actor.pk == member.user_id
        record_audit(
            actor=actor,
            action="member.data_export",
            obj=member,
            after={"by": "member" if is_self else "operator"},
            reason=reason or (_("Downloaded by the member") if is_self else ""),
        )
    stamp = timezone.localdate().isoformat()
    return DataExport(filename=f"member-{member.pk}-data-{stamp}.zip", content=buffer.getvalue())


def is_erased(member_id: int) -> bool:
    return AuditEntry.objects.filter(
        action="member.erase",
        object_type="membership.member",
        object_id=str(member_id),
    ).exists()


def erase_member(*, member_id: int, actor, reason: str) -> Member:
    """Replace the member's identity on request; keep their orders, ledgers and history.

    Refused (ValidationError, nothing changed) without a reason, for a member already
    erased, and while a subscription is live (it would go on charging a card). Locks the
    member row. The login is kept for the foreign keys but anonymised, cannot log in any
    more and its sessions stop working; its login-attempt records are deleted."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("Give the reason for the erasure (the request it answers)."))
    with transaction.atomic():
        member = (
            Member.objects.select_for_update(of=("self",)).select_related("user").get(pk=member_id)
        )
        if is_erased(member.pk):
            raise ValidationError(_("%(member)s was already erased.") % {"member": member})
        live = Subscription.objects.filter(member=member).exclude(state=Subscription.State.EXPIRED)
        if live.exists():
            raise ValidationError(
                _("%(member)s has a live subscription. Cancel it first, then erase.")
                % {"member": member}
            )
        erased = [f for f in ERASED_FIELDS if getattr(member, f) not in ("", None)]
        member.name = _erased_name(member.pk)
        member.phone = ""
        member.email = ""
        member.birthday = None
        member.full_clean(validate_unique=False)
        member.save(update_fields=ERASED_FIELDS)
        if member.user is not None:
            _anonymise_login(member.user, member.pk)
            erased.append("user")
        record_audit(
            actor=actor,
            action="member.erase",
            obj=member,
            # Which fields were erased, never their old values: this row is kept for good.
            before={"erased": erased},
            after=snapshot(member, ERASED_FIELDS),
            reason=reason,
        )
    return member


def _erased_name(member_pk: int) -> str:
    return f"已刪除會員 #{member_pk}"


def _anonymise_login(user, member_pk: int) -> None:
    old_username = user.get_username()
    user.username = f"erased-member-{member_pk}"
    user.email = ""
    user.first_name = ""
    user.last_name = ""
    user.is_active = False
    # A new password hash also ends every session of this login (Django checks it).
    user.set_unusable_password()
    user.save()
    for model in (AccessAttempt, AccessFailureLog, AccessLog):
        model.objects.filter(username=old_username).delete()


# -- the tables of the export -----------------------------------------------------------


def _label(model: type[models.Model], field: str) -> str:
    return str(model._meta.get_field(field).verbose_name)


def _member_tables(member: Member) -> dict[str, tuple[list[str], list[list]]]:
    orders = Order.objects.filter(member=member).order_by("placed_at", "pk")
    refunds = (
        Refund.objects.filter(order__member=member)
        .select_related("order")
        .order_by("refunded_at", "pk")
    )
    entries = Entry.objects.filter(account__member=member).order_by("created_at", "pk")
    history = (
        TierHistory.objects.filter(member=member)
        .select_related("from_group", "from_tier", "to_group", "to_tier")
        .order_by("created_at", "pk")
    )
    gifts = member.gifts.select_related("tier").order_by("issued_at", "pk")
    subscriptions = Subscription.objects.filter(member=member).select_related("plan")
    balance = Entry.objects.filter(account__member=member).aggregate(total=models.Sum("points"))[
        "total"
    ]
    profile = [
        (_label(Member, "external_id"), member.external_id),
        (_label(Member, "name"), member.name),
        (_label(Member, "phone"), member.phone),
        (_label(Member, "email"), member.email),
        (_label(Member, "birthday"), member.birthday),
        (_label(Member, "language"), member.get_language_display()),
        (_label(Member, "joined_at"), _local(member.joined_at)),
        (_label(Member, "user"), member.user.get_username() if member.user else ""),
        (_label(Member, "tags"), "、".join(t.name for t in member.tags.order_by("name"))),
        (_label(Member, "group"), member.group or ""),
        (_label(Member, "tier"), member.tier.name if member.tier else ""),
        (_("points balance"), balance or 0),
    ]
    return {
        "profile.csv": ([_("field"), _("value")], [list(row) for row in profile]),
        "orders.csv": (
            [_label(Order, f) for f in ["external_id", "placed_at", "channel", "amount"]]
            + [_label(Order, f) for f in ["refunded_amount", "status"]],
            [
                [
                    o.external_id,
                    _local(o.placed_at),
                    o.channel,
                    o.amount,
                    o.refunded_amount,
                    o.get_status_display(),
                ]
                for o in orders
            ],
        ),
        "refunds.csv": (
            [_label(Refund, f) for f in ["order", "external_id", "amount", "refunded_at"]],
            [
                [r.order.external_id, r.external_id, r.amount, _local(r.refunded_at)]
                for r in refunds
            ],
        ),
        "points.csv": (
            [_label(Entry, f) for f in ["created_at", "kind", "points", "source", "reason"]],
            [
                [_local(e.created_at), e.get_kind_display(), e.points, e.source, e.reason]
                for e in entries
            ],
        ),
        "tier_history.csv": (
            [
                _label(TierHistory, f)
                for f in ["created_at", "from_group", "from_tier", "to_group", "to_tier"]
            ]
            + [_label(TierHistory, f) for f in ["cause", "reason"]],
            [
                [
                    _local(h.created_at),
                    h.from_group or "",
                    h.from_tier.name if h.from_tier else "",
                    h.to_group or "",
                    h.to_tier.name if h.to_tier else "",
                    h.get_cause_display(),
                    h.reason,
                ]
                for h in history
            ],
        ),
        "gifts.csv": (
            [_label(GiftIssue, f) for f in ["issued_at", "tier", "gift"]],
            [[_local(g.issued_at), g.tier.name, g.gift] for g in gifts],
        ),
        "subscriptions.csv": (
            [_label(Subscription, f) for f in ["plan", "state", "period_start", "period_end"]],
            [
                [s.plan, s.get_state_display(), _local(s.period_start), _local(s.period_end)]
                for s in subscriptions
            ],
        ),
    }


def _local(value):
    return timezone.localtime(value).isoformat(timespec="seconds") if value else ""


def _csv(header: list[str], rows: list[list]) -> str:
    """UTF-8 with a BOM; text escaped against spreadsheet formulas, numbers left as numbers."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([v if isinstance(v, int | Decimal) else escape(v) for v in row])
    return "\ufeff" + out.getvalue()
