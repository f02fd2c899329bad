"""The points rules. Every movement is one append-only Entry with a unique idempotency key.

Locks: the member's Account row, taken before anything is read, so two workers posting
the same source event, or racing redemptions, are serialised; the unique key backs it.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_FLOOR, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.models import Order, Tier
from membership.services import record_audit
from membership.services.notifications import email_member
from membership.services.rules import add_months_local
from membership.sqltime import to_db

from .models import Account, Entry, Lot, Promotion, TierCoefficient
from .selectors import spendable


def points_for_spend(amount: int, points_per_100: int) -> int:
    """The one rounding rule for earning: whole NT$100s only, rounded down."""
    return (amount // 100) * points_per_100


def _locked_account(member_id: int) -> Account:
    Account.objects.get_or_create(member_id=member_id)
    return Account.objects.select_for_update().get(member_id=member_id)


def _existing(key: str, points: int) -> Entry | None:
    entry = Entry.objects.filter(idempotency_key=key).first()
    if entry is not None and entry.points != points:
        raise ValidationError(
            _("Idempotency key %(key)s was already used for %(points)s points.")
            % {"key": key, "points": entry.points}
        )
    return entry


def _entry(
    account: Account,
    kind,
    points: int,
    source: str,
    ref: str,
    key: str,
    now,
    reason="",
    shortfall=0,
):
    account.balance += points
    account.save(update_fields=["balance", "shortfall"])
    return Entry.objects.create(
        account=account,
        kind=kind,
        points=points,
        source=source,
        source_ref=ref,
        idempotency_key=key,
        reason=reason,
        shortfall=shortfall,
        created_at=now,
    )


def _take(account: Account, points: int, now, *, first: Lot | None = None, spendable_only: bool):
    """Take ``points`` from lots, ``first`` then oldest expiry first. Returns what was taken."""
    lots = Lot.objects.select_for_update().filter(
        account=account, remaining__gt=0, expires_at__gt=now
    )
    if spendable_only:
        lots = lots.filter(available_at__lte=now)
    ordered = ([first] if first is not None and first.remaining > 0 else []) + [
        lot for lot in lots.order_by("expires_at", "id") if first is None or lot.pk != first.pk
    ]
    taken = 0
    for lot in ordered:
        step = min(lot.remaining, points - taken)
        if step <= 0:
            break
        lot.remaining -= step
        lot.save(update_fields=["remaining"])
        taken += step
    return taken


def earn(
    *,
    member_id: int,
    points: int,
    source: str,
    source_ref: str,
    key: str,
    available_at=None,
    reason="",
    kind: str = Entry.Kind.EARN,
) -> Entry:
    """Add an earning lot. Idempotent on ``key``. A recorded shortfall is settled first."""
    if points <= 0:
        raise ValidationError(_("Earned points must be above zero."))
    now = timezone.now()
    fast = _fast_earn(
        member_id=member_id,
        points=points,
        source=source,
        source_ref=source_ref,
        key=key,
        available_at=available_at or now,
        reason=reason,
        kind=kind,
        now=now,
    )
    if fast is not None:
        return fast
    with transaction.atomic():
        account = _locked_account(member_id)
        if entry := _existing(key, points):
            return entry
        entry = _entry(account, kind, points, source, source_ref, key, now, reason)
        available_at = available_at or now
        settle = min(account.shortfall, points)
        Lot.objects.create(
            entry=entry,
            account=account,
            points=points,
            remaining=points - settle,
            available_at=available_at,
            expires_at=lot_expiry(available_at),
        )
        if settle:
            account.shortfall -= settle
            _entry(account, Entry.Kind.REVERSE, -settle, "shortfall", key, f"{key}:settle", now)
        return entry


# The common earning in one statement: lock the account (if it exists and owes nothing),
# insert the entry unless its key is taken, its lot, and the balance. Anything else —
# no account yet, a shortfall to settle, a repeated key — returns no row and takes the
# general path below, which does the same in several statements.
FAST_EARN = """
WITH acct AS (
    SELECT id FROM points_account WHERE member_id = %(member)s AND shortfall = 0 FOR UPDATE
), ins AS (
    INSERT INTO points_entry (account_id, kind, points, source, source_ref, idempotency_key,
                              shortfall, reason, created_at)
    SELECT id, %(kind)s, %(points)s, %(source)s, %(ref)s, %(key)s, 0, %(reason)s, %(now)s
    FROM acct
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, account_id
), lot AS (
    INSERT INTO points_lot (entry_id, account_id, points, remaining, available_at, expires_at)
    SELECT id, account_id, %(points)s, %(points)s, %(available)s, %(expires)s FROM ins
), moved AS (
    UPDATE points_account SET balance = balance + %(points)s
    WHERE id = (SELECT account_id FROM ins)
)
SELECT ins.id, ins.account_id, done.id, done.points, done.account_id, done.kind, done.source,
       done.source_ref, done.shortfall, done.reason, done.created_at
FROM (SELECT 1) one
LEFT JOIN ins ON true
LEFT JOIN points_entry done ON done.idempotency_key = %(key)s
"""


def _fast_earn(
    *, member_id, points, source, source_ref, key, available_at, reason, kind, now
) -> Entry | None:
    if connection.vendor != "postgresql":
        return None
    # With server-side binding (settings) psycopg prepares this after a few runs on a
    # connection: planning it cost PostgreSQL more CPU than running it.
    with connection.cursor() as cursor:
        cursor.execute(
            FAST_EARN,
            {
                "member": member_id,
                "kind": kind,
                "points": points,
                "source": source,
                "ref": source_ref,
                "key": key,
                "reason": reason,
                "now": now,
                "available": available_at,
                "expires": lot_expiry(available_at),
            },
        )
        entry_id, account_id, done_id, done_points, *done = cursor.fetchone()
    if done_id is not None and done_points == points:
        # The same event again: the first posting, as it was written.
        fields = ("account_id", "kind", "source", "source_ref", "shortfall", "reason", "created_at")
        return Entry(
            pk=done_id,
            points=done_points,
            idempotency_key=key,
            **dict(zip(fields, done, strict=True)),
        )
    if entry_id is None:
        return None
    return Entry(
        pk=entry_id,
        account_id=account_id,
        kind=kind,
        points=points,
        source=source,
        source_ref=source_ref,
        idempotency_key=key,
        shortfall=0,
        reason=reason,
        created_at=now,
    )


def lot_expiry(available_at: dt.datetime) -> dt.datetime:
    return add_months_local(available_at, settings.POINTS_LOT_MONTHS)


def redeem(*, member_id: int, points: int, source: str, source_ref: str, key: str) -> Entry:
    """Spend points, oldest lots first. Refused, changing nothing, if not enough is spendable."""
    if points <= 0:
        raise ValidationError(_("Redeemed points must be above zero."))
    now = timezone.now()
    with transaction.atomic():
        account = _locked_account(member_id)
        if entry := _existing(key, -points):
            return entry
        if spendable(member_id, now) < points:
            raise ValidationError(
                _("Not enough points: %(have)s can be spent, %(want)s asked.")
                % {"have": spendable(member_id, now), "want": points}
            )
        _take(account, points, now, spendable_only=True)
        return _entry(account, Entry.Kind.REDEEM, -points, source, source_ref, key, now)


def adjust(*, member_id: int, points: int, reason: str, actor, key: str) -> Entry:
    """An operator's correction: a reason is required; audited. Never below zero."""
    if not reason.strip():
        raise ValidationError({"reason": _("An adjustment needs a reason.")})
    if points == 0:
        raise ValidationError({"points": _("An adjustment of 0 points changes nothing.")})
    with transaction.atomic():
        account = _locked_account(member_id)
        if entry := _existing(key, points):
            return entry  # posted and audited the first time
        if points > 0:
            entry = earn(
                member_id=member_id,
                points=points,
                source="operator",
                source_ref=actor.username,
                key=key,
                reason=reason,
            )
        else:
            now = timezone.now()
            if account.balance < -points:
                raise ValidationError(_("The balance cannot go below zero."))
            _take(account, -points, now, spendable_only=False)
            entry = _entry(
                account, Entry.Kind.ADJUST, points, "operator", actor.username, key, now, reason
            )
        record_audit(
            actor=actor,
            action="points.adjust",
            obj=account.member,
            after={"points": points, "entry": entry.pk},
            reason=reason,
        )
    return entry


def order_points(*, amount: int, tier_id: int | None, placed_at: dt.datetime) -> int:
    """The stacking rule (models.STACKING_RULE), written once: base × coefficient × promotion."""
    rate = Tier.objects.filter(pk=tier_id).values_list("points_per_100", flat=True).first() or 0
    coefficient = TierCoefficient.objects.filter(tier_id=tier_id).values_list(
        "coefficient", flat=True
    ).first() or Decimal(1)
    promotion = Promotion.objects.filter(starts_at__lte=placed_at, ends_at__gt=placed_at).aggregate(
        best=Max("multiplier")
    )["best"] or Decimal(1)
    base = points_for_spend(amount, rate)
    return int((base * coefficient * promotion).to_integral_value(rounding=ROUND_FLOOR))


def earn_for_order(*, order: Order, tier_id: int | None) -> Entry | None:
    points = order_points(amount=order.amount, tier_id=tier_id, placed_at=order.placed_at)
    if points <= 0:
        return None
    return earn(
        member_id=order.member_id,
        points=points,
        source="order",
        source_ref=str(order),
        key=f"order:{order.source}:{order.external_id}",
        available_at=order.placed_at + dt.timedelta(days=settings.POINTS_PENDING_DAYS),
    )


def reverse_for_refund(*, order: Order, refund_key: str) -> Entry | None:
    """Take back the points of the refunded part, in proportion, pending or not.

    The total reversed for an order is always earned × refunded ÷ amount, rounded down,
    so partial refunds add up exactly. What was already spent becomes a shortfall.
    """
    return reverse_share(
        earned_key=f"order:{order.source}:{order.external_id}",
        order=order,
        source="refund",
        key=f"refund:{refund_key}",
    )


def reverse_share(*, earned_key: str, order: Order, source: str, key: str) -> Entry | None:
    """Reverse the refunded share of the points one entry earned on ``order``.

    Used for the buyer's own points and for the referrer's 2% of the same order.
    """
    earned = Entry.objects.select_related("account").filter(idempotency_key=earned_key).first()
    if earned is None:
        return None
    now = timezone.now()
    with transaction.atomic():
        account = _locked_account(earned.account.member_id)
        order.refresh_from_db()
        target = earned.points * order.refunded_amount // order.amount
        reversed_so_far = Entry.objects.filter(
            account=account, source=source, source_ref=str(order)
        ).aggregate(taken=Sum("points"), owed=Sum("shortfall"))
        done = -(reversed_so_far["taken"] or 0) + (reversed_so_far["owed"] or 0)
        points = target - done
        if points <= 0:
            return None
        if existing := _existing(key, -points):
            return existing
        taken = _take(account, points, now, first=earned.lot, spendable_only=False)
        account.shortfall += points - taken
        return _entry(
            account,
            Entry.Kind.REVERSE,
            -taken,
            source,
            str(order),
            key,
            now,
            shortfall=points - taken,
        )


def expire_due(*, now: dt.datetime | None = None) -> int:
    """Expire every lot past its date, set-based: one entry per lot, balances moved together."""
    now = now or timezone.now()
    stamp = to_db(now)
    with transaction.atomic(), connection.cursor() as cur:
        list(
            Account.objects.select_for_update()
            .filter(lots__expires_at__lte=now, lots__remaining__gt=0)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        cur.execute(
            "INSERT INTO points_entry (account_id, kind, points, source, source_ref, "
            "idempotency_key, reason, shortfall, created_at) "
            "SELECT account_id, 'expire', -remaining, 'expiry', CAST(id AS TEXT), "
            "'expire:lot:' || CAST(id AS TEXT), '', 0, %s FROM points_lot "
            "WHERE expires_at <= %s AND remaining > 0",
            [stamp, stamp],
        )
        expired = cur.rowcount
        cur.execute(
            "UPDATE points_account SET balance = points_account.balance - d.total FROM "
            "(SELECT account_id, SUM(remaining) AS total FROM points_lot "
            "WHERE expires_at <= %s AND remaining > 0 GROUP BY account_id) d "
            "WHERE points_account.id = d.account_id",
            [stamp],
        )
        cur.execute(
            "UPDATE points_lot SET remaining = 0 WHERE expires_at <= %s AND remaining > 0", [stamp]
        )
    return expired


def ledger_discrepancies() -> list[tuple[int, int, int, int]]:
    """Accounts whose cached balance differs from their entries or lots.

    Rows are (account id, cached balance, sum of entries, sum of lots' remaining).
    """
    out = []
    entries = dict(
        Entry.objects.values("account").annotate(s=Sum("points")).values_list("account", "s")
    )
    lots = dict(
        Lot.objects.values("account").annotate(s=Sum("remaining")).values_list("account", "s")
    )
    for pk, balance in Account.objects.values_list("pk", "balance"):
        e, lo = entries.get(pk) or 0, lots.get(pk) or 0
        if not balance == e == lo:
            out.append((pk, balance, e, lo))
    return out


def next_expiry(member_id: int, now=None) -> Lot | None:
    now = now or timezone.now()
    return (
        Lot.objects.filter(account__member_id=member_id, remaining__gt=0, expires_at__gt=now)
        .order_by("expires_at", "id")
        .first()
    )


def send_expiry_reminders(*, now: dt.datetime | None = None) -> int:
    """Tell members about points expiring within 30 days: once per lot, whoever runs it."""
    now = now or timezone.now()
    soon = now + dt.timedelta(days=30)
    due = Lot.objects.filter(
        remaining__gt=0, expires_at__gt=now, expires_at__lte=soon, reminded_at__isnull=True
    )
    sent = 0
    for member_id in due.values_list("account__member_id", flat=True).distinct():
        lots = due.filter(account__member_id=member_id)
        ids = list(lots.values_list("pk", flat=True))
        # Claim the lots first: a second worker finds nothing left to remind.
        if not Lot.objects.filter(pk__in=ids, reminded_at__isnull=True).update(reminded_at=now):
            continue
        member = Account.objects.select_related("member").get(member_id=member_id).member
        if not member.email:
            continue
        points = Lot.objects.filter(pk__in=ids).aggregate(s=Sum("remaining"))["s"] or 0
        first = Lot.objects.filter(pk__in=ids).order_by("expires_at").first()
        sent += email_member(
            member=member,
            template="points/email/expiring.{language}.txt",
            context={"points": points, "date": first.expires_at},
        )
    return sent
