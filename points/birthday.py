"""The birthday-month bonus, awarded after the month ends on its largest order.

Finding who earned it is one query over the month's orders (a window picks each
member's largest order after refunds); each bonus is then posted through ``earn``,
which locks the member's account and settles any shortfall — a month holds a twelfth
of the members, and of them only those who bought.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_FLOOR

from django.conf import settings
from django.db.models import CharField, F, OuterRef, Subquery, Value, Window
from django.db.models.functions import Concat, RowNumber
from django.utils import timezone

from membership.models import Order
from membership.services.rules import local_midnight, net_spend

from .models import BirthdayRule, Entry
from .services import earn


def month_bounds(year: int, month: int) -> tuple[dt.datetime, dt.datetime]:
    first = dt.date(year, month, 1)
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return local_midnight(first), local_midnight(following)


def previous_month(now: dt.datetime | None = None) -> tuple[int, int]:
    first = timezone.localdate(now or timezone.now()).replace(day=1)
    last = first - dt.timedelta(days=1)
    return last.year, last.month


def largest_orders(year: int, month: int):
    """Per member born in ``month``: their largest paid order of that month, net of refunds,
    with the points it earned."""
    start, end = month_bounds(year, month)
    earned_key = Concat(
        Value("order:"),
        OuterRef("source"),
        Value(":"),
        OuterRef("external_id"),
        output_field=CharField(),
    )
    return (
        Order.objects.filter(
            status=Order.Status.PAID,
            member__birthday__month=month,
            placed_at__gte=start,
            placed_at__lt=end,
        )
        .annotate(net=net_spend())
        .filter(net__gt=0)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("member_id")],
                order_by=[F("net").desc(), F("placed_at").asc(), F("pk").asc()],
            ),
            earned=Subquery(Entry.objects.filter(idempotency_key=earned_key).values("points")[:1]),
        )
        .filter(rank=1, earned__gt=0)
    )


def bonus_for(rule: BirthdayRule, *, earned: int, net: int, amount: int) -> int:
    """(multiplier − 1) × the points the order still carries after refunds, capped."""
    carried = earned * net // amount
    extra = ((rule.multiplier - 1) * carried).to_integral_value(rounding=ROUND_FLOOR)
    return min(int(extra), rule.cap)


def award_birthday_bonuses(*, year: int, month: int) -> int:
    """Post the month's birthday bonuses; once a member a year, whoever runs it how often."""
    rule = BirthdayRule.objects.filter(active=True).first()
    if rule is None:
        return 0
    awarded = 0
    pending = dt.timedelta(days=settings.POINTS_PENDING_DAYS)
    rows = largest_orders(year, month).values_list(
        "member_id", "external_id", "net", "amount", "earned"
    )
    for member_id, external_id, net, amount, earned in rows.iterator():
        key = f"birthday:{member_id}:{year}"
        points = bonus_for(rule, earned=earned, net=net, amount=amount)
        if points <= 0 or Entry.objects.filter(idempotency_key=key).exists():
            continue  # a refund since the first run does not change a bonus already given
        earn(
            member_id=member_id,
            points=points,
            source="birthday",
            source_ref=f"{year}-{month:02d} {external_id}",
            key=key,
            available_at=timezone.now() + pending,
        )
        awarded += 1
    return awarded
