"""Orders and refunds reported by the shop. Re-sending either is harmless."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.models import Cause, Member, Order, Refund
from membership.signals import order_cancelled, order_recorded, refund_recorded
from membership.sqltime import to_db

from .audit import record_audit, snapshot
from .evaluation import EvaluationResult, evaluate_locked_member, evaluate_member, lock_member
from .rules import Mode
from .summary import refresh_member_summaries


@dataclass
class OrderResult:
    order: Order
    created: bool
    evaluation: EvaluationResult | None = None


def record_order(
    *,
    member_id: int | None = None,
    member_external_id: str | None = None,
    external_id: str,
    amount: int,
    placed_at: dt.datetime,
    source: str = "shop",
    channel: str = "",
    actor=None,
) -> OrderResult:
    """Record a paid order and upgrade the member at once if it lifts them.

    Idempotent on (source, external_id): the same order again returns the first one;
    the same id with different content is refused. The member is named by ``member_id``
    or by their ``member_external_id`` (the shop's, read with the lock): an unknown one
    raises ``Member.DoesNotExist``, writing nothing.

    No savepoint of its own inside a caller's transaction (two round trips on every
    order): an error here leaves that transaction to be rolled back, as every caller
    does. One that catches the error and goes on must open a savepoint around the call.
    """
    if (member_id is None) == (member_external_id is None):
        raise TypeError("Name the member by exactly one of member_id and member_external_id.")
    if not isinstance(amount, int) or amount < 0:
        raise ValidationError({"amount": _("The amount must be a whole number of NT$, 0 or more.")})
    if timezone.is_naive(placed_at):
        raise ValidationError({"placed_at": _("The order time must carry a time zone.")})
    with transaction.atomic(savepoint=False):
        # The member row lock serialises every write about one member, duplicates included.
        member = lock_member(member_id, external_id=member_external_id)
        order = Order(
            member=member,
            source=source,
            external_id=external_id,
            channel=channel,
            amount=amount,
            placed_at=placed_at,
            created_at=timezone.now(),
        )
        latest = member.last_order_at is None or placed_at > member.last_order_at
        order.pk = _insert_unless_recorded(order, last_order_at=placed_at if latest else None)
        if order.pk is None:
            existing = Order.objects.get(source=source, external_id=external_id)
            if existing.member_id != member.pk or existing.amount != amount:
                raise ValidationError(
                    _("Order %(ref)s was already recorded with a different member or amount.")
                    % {"ref": f"{source}:{external_id}"}
                )
            return OrderResult(order=existing, created=False)
        order._state.adding = False
        if actor is not None:
            record_audit(actor=actor, action="order.add", obj=order, after=snapshot(order))
        if latest:
            member.last_order_at = placed_at  # written with the order
        # Points are earned at the tier held when the order was placed, before it lifts
        # them; and before the evaluation, which counts them in a growth-points group.
        order_recorded.send(sender=Order, order=order, member_id=member.pk, tier_id=member.tier_id)
        # The member is locked above: evaluated as it is, without locking it again.
        result = evaluate_locked_member(member, mode=Mode.UPGRADE, cause=Cause.ORDER, order=order)
        return OrderResult(order=order, created=True, evaluation=result)


ORDER_COLUMNS = (
    "member_id",
    "source",
    "external_id",
    "channel",
    "amount",
    "refunded_amount",
    "placed_at",
    "status",
    "created_at",
)


def _insert_unless_recorded(order: Order, *, last_order_at: dt.datetime | None) -> int | None:
    """INSERT the order unless its (source, external id) is recorded: its new id, or None.

    One statement, where a look for the order and then the INSERT took two. A concurrent
    INSERT of the same order waits for the other's commit and then inserts nothing.
    ``last_order_at``: the member's new last order time, written only with a new order —
    in the same statement on PostgreSQL (a data-modifying WITH), in a second on SQLite.
    """
    values = [
        to_db(v) if isinstance(v, dt.datetime) else v
        for v in (getattr(order, column) for column in ORDER_COLUMNS)
    ]
    insert = (
        f"INSERT INTO membership_order ({', '.join(ORDER_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(ORDER_COLUMNS))}) "
        "ON CONFLICT (source, external_id) DO NOTHING RETURNING id"
    )
    moves = last_order_at is not None
    together = moves and connection.vendor == "postgresql"
    if together:
        insert = (
            f"WITH ins AS ({insert}), moved AS (UPDATE membership_member SET last_order_at = %s "
            "WHERE id = %s AND EXISTS (SELECT 1 FROM ins)) SELECT id FROM ins"
        )
        values += [to_db(last_order_at), order.member_id]
    with connection.cursor() as cursor:
        cursor.execute(insert, values)
        row = cursor.fetchone()
        if row and moves and not together:
            cursor.execute(
                "UPDATE membership_member SET last_order_at = %s WHERE id = %s",
                [to_db(last_order_at), order.member_id],
            )
    return row[0] if row else None


def record_refund(
    *,
    order_id: int,
    external_id: str,
    amount: int,
    refunded_at: dt.datetime | None = None,
    actor=None,
) -> Refund:
    """Refund part or all of an order. Idempotent on (order, external_id).

    A refund lowers the order's qualifying amount. If the order is the one that
    earned the member's tier, the member is re-ranked at once; other falls wait
    for review. Gifts already given stay given.
    """
    if not isinstance(amount, int) or amount <= 0:
        raise ValidationError({"amount": _("A refund is a whole number of NT$ above 0.")})
    with transaction.atomic():
        member_id = Order.objects.values_list("member_id", flat=True).get(pk=order_id)
        member = lock_member(member_id)
        order = Order.objects.select_for_update().get(pk=order_id)
        existing = Refund.objects.filter(order=order, external_id=external_id).first()
        if existing is not None:
            if existing.amount != amount:
                raise ValidationError(
                    _("Refund %(ref)s was already recorded with a different amount.")
                    % {"ref": external_id}
                )
            return existing
        remaining = order.amount - order.refunded_amount
        if amount > remaining:
            raise ValidationError(
                {
                    "amount": _("Only NT$%(remaining)s of this order is left to refund.")
                    % {"remaining": f"{remaining:,}"}
                }
            )
        refund = Refund.objects.create(
            order=order,
            external_id=external_id,
            amount=amount,
            refunded_at=refunded_at or timezone.now(),
        )
        order.refunded_amount += amount
        order.save(update_fields=["refunded_amount"])
        if actor is not None:
            record_audit(
                actor=actor,
                action="order.refund",
                obj=order,
                before={"refunded_amount": order.refunded_amount - amount},
                after={"refunded_amount": order.refunded_amount, "refund": external_id},
            )
        # The points are taken back first: a growth-points group re-ranks on what is left.
        refund_recorded.send(sender=Refund, refund=refund, order=order)
        if _earned_the_tier(member, order):
            evaluate_member(member_id=member.pk, mode=Mode.RERANK, cause=Cause.REFUND)
        refresh_member_summaries(member_ids=[member.pk])
        return refund


def cancel_order(*, order_id: int) -> Order:
    """Cancel an order: it no longer counts, and the points it earned are taken back.
    Same re-ranking as a full refund."""
    with transaction.atomic():
        member_id = Order.objects.values_list("member_id", flat=True).get(pk=order_id)
        member = lock_member(member_id)
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.status == Order.Status.CANCELLED:
            return order
        order.status = Order.Status.CANCELLED
        order.save(update_fields=["status"])
        # The points it earned go back with it (the part not already refunded).
        order_cancelled.send(sender=Order, order=order)
        if _earned_the_tier(member, order):
            evaluate_member(member_id=member.pk, mode=Mode.RERANK, cause=Cause.REFUND)
        refresh_member_summaries(member_ids=[member.pk])
        return order


def _earned_the_tier(member: Member, order: Order) -> bool:
    """Whether ``order`` lifted the tier of this member (of their master account, for a
    sub-account)."""
    if member.tier_holder_id:
        member = Member.objects.get(pk=member.tier_holder_id)
    return member.tier_earned_by_order_id == order.pk
