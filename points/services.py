"""The points rules: what an order earns, redemption, refunds, adjustments and expiry.

Every movement is posted through ``points.ledger`` (one append-only Entry with a unique
idempotency key, under the member's account lock). ``earn`` and ``lot_expiry`` are the
ledger's, named here too for the callers that import them from this module.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from api.webhooks import events as webhooks
from membership.models import Order
from membership.services import record_audit
from membership.services.notifications import email_member
from membership.sqltime import to_db

from .ledger import (  # noqa: F401 (earn, lot_expiry: public names here too)
    earn,
    existing_entry,
    expire_lots,
    lock_account,
    lot_expiry,
    post,
    spend,
    take,
)
from .models import Account, Entry, Lot
from .selectors import spendable  # noqa: F401 (a public name of this module too)


def points_for_spend(amount: int, points_per_100: int) -> int:
    """The one rounding rule for earning: whole NT$100s only, rounded down."""
    return (amount // 100) * points_per_100


def redeem(*, member_id: int, points: int, source: str, source_ref: str, key: str) -> Entry:
    """Spend points, oldest lots first. Refused, changing nothing, if not enough is spendable."""
    if points <= 0:
        raise ValidationError(_("Redeemed points must be above zero."))
    now = timezone.now()
    with transaction.atomic():
        account = lock_account(member_id)
        if entry := existing_entry(key, -points):
            return entry
        spend(account, points, now)
        return post(account, Entry.Kind.REDEEM, -points, source, source_ref, key, now)


def adjust(*, member_id: int, points: int, reason: str, actor, key: str) -> Entry:
    """An operator's correction: a reason is required; audited. Never below zero."""
    if not reason.strip():
        raise ValidationError({"reason": _("An adjustment needs a reason.")})
    if points == 0:
        raise ValidationError({"points": _("An adjustment of 0 points changes nothing.")})
    with transaction.atomic():
        account = lock_account(member_id)
        if entry := existing_entry(key, points):
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
            # Lots past their date but not yet expired by the job count in the balance and
            # cannot be taken: refused (rolled back) when the lots hold too little.
            if (
                account.balance < -points
                or take(account, -points, now, spendable_only=False) < -points
            ):
                raise ValidationError(_("The balance cannot go below zero."))
            entry = post(
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


# The three factors of an order's points in one statement. Written as SQL: every order
# runs it, and the ORM took longer to build it (two annotated subqueries, about 1 ms) than
# the database takes to answer it.
ORDER_FACTORS = (
    "SELECT t.points_per_100, "
    "(SELECT c.coefficient FROM points_tiercoefficient c WHERE c.tier_id = t.id "
    "ORDER BY c.id LIMIT 1), "
    "(SELECT p.multiplier FROM points_promotion p WHERE p.starts_at <= %(at)s "
    "AND p.ends_at > %(at)s ORDER BY p.multiplier DESC LIMIT 1) "
)
# An order's earning asks two more things in the same statement, each of which took a
# round trip of its own (of about 15 an order): whether the buyer was referred (nearly
# never), and whether they have a points account yet. Without one, the ledger opens it
# before its one-statement earning instead of failing that first and running it again
# (``earn(new_account=True)``); it is opened only for an order that earns, as before.
_REFERRED_AND_ACCOUNT = (
    ", EXISTS (SELECT 1 FROM points_referral r WHERE r.friend_id = %(member)s), "
    "EXISTS (SELECT 1 FROM points_account a WHERE a.member_id = %(member)s) "
    "FROM (SELECT 1 AS one) one LEFT JOIN membership_tier t ON t.id = %(tier)s"
)


@dataclass(frozen=True)
class OrderEarning:
    """What an order earns its buyer, whether a referral names the buyer as the friend,
    and whether the buyer had a points account when it was read."""

    points: int
    referred: bool
    has_account: bool


def order_points(*, amount: int, tier_id: int | None, placed_at: dt.datetime) -> int:
    """The stacking rule (models.STACKING_RULE), written once: base × coefficient × promotion."""
    if tier_id is None:
        return 0  # no tier: no rate
    with connection.cursor() as cursor:
        cursor.execute(
            ORDER_FACTORS + "FROM membership_tier t WHERE t.id = %(tier)s",
            {"at": to_db(placed_at), "tier": tier_id},
        )
        row = cursor.fetchone()
    return _stacked(amount, row) if row else 0


def order_earning(*, order: Order, tier_id: int | None) -> OrderEarning:
    """``order_points`` for ``order`` at ``tier_id``, with the referral and account
    tests, in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            ORDER_FACTORS + _REFERRED_AND_ACCOUNT,
            {"at": to_db(order.placed_at), "tier": tier_id, "member": order.member_id},
        )
        row = cursor.fetchone()
    points = _stacked(order.amount, row[:3]) if tier_id is not None else 0
    return OrderEarning(points=points, referred=bool(row[3]), has_account=bool(row[4]))


def _stacked(amount: int, factors) -> int:
    rate, coefficient, promotion = factors[0] or 0, _decimal(factors[1]), _decimal(factors[2])
    base = points_for_spend(amount, rate)
    return int((base * coefficient * promotion).to_integral_value(rounding=ROUND_FLOOR))


def _decimal(value) -> Decimal:
    """A factor as read (PostgreSQL gives a Decimal, SQLite a number); none is 1."""
    if value is None:
        return Decimal(1)
    return value if isinstance(value, Decimal) else Decimal(str(value))


def earn_for_order(*, order: Order, earning: OrderEarning) -> Entry | None:
    """Post ``order_earning``'s points for ``order``; nothing when there are none."""
    if earning.points <= 0:
        return None
    return earn(
        member_id=order.member_id,
        points=earning.points,
        source="order",
        source_ref=str(order),
        key=f"order:{order.source}:{order.external_id}",
        available_at=order.placed_at + dt.timedelta(days=settings.POINTS_PENDING_DAYS),
        new_account=not earning.has_account,
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
    """Reverse the refunded share of the points one entry earned on ``order`` (all of
    them once the order is cancelled).

    Used for the buyer's own points and for the referrer's 2% of the same order.
    """
    earned = Entry.objects.select_related("account").filter(idempotency_key=earned_key).first()
    if earned is None:
        return None
    now = timezone.now()
    with transaction.atomic():
        account = lock_account(earned.account.member_id)
        order.refresh_from_db()
        # A cancelled order keeps nothing; a refunded one keeps the part not refunded.
        taken_back = (
            order.amount if order.status == Order.Status.CANCELLED else order.refunded_amount
        )
        target = earned.points * taken_back // order.amount if order.amount else earned.points
        reversed_so_far = Entry.objects.filter(
            account=account, source=source, source_ref=str(order)
        ).aggregate(taken=Sum("points"), owed=Sum("shortfall"))
        done = -(reversed_so_far["taken"] or 0) + (reversed_so_far["owed"] or 0)
        points = target - done
        if points <= 0:
            return None
        if existing := existing_entry(key, -points):
            return existing
        taken = take(account, points, now, first=earned.lot, spendable_only=False)
        account.shortfall += points - taken
        return post(
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
    """Expire every lot past its date (the ledger's set-based ``expire_lots``)."""
    return expire_lots(now or timezone.now())


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
        with transaction.atomic():
            if not Lot.objects.filter(pk__in=ids, reminded_at__isnull=True).update(reminded_at=now):
                continue
            member = Account.objects.select_related("member").get(member_id=member_id).member
            points = Lot.objects.filter(pk__in=ids).aggregate(s=Sum("remaining"))["s"] or 0
            first = Lot.objects.filter(pk__in=ids).order_by("expires_at").first()
            webhooks.points_expiring(
                member=member, points=points, expires_at=first.expires_at, now=now
            )
        if not member.email:
            continue
        sent += email_member(
            member=member,
            template="points/email/expiring.{language}.txt",
            context={"points": points, "date": first.expires_at},
        )
    return sent
