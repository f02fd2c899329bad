"""Spending and earning beyond orders: rewards (tier months too), actions, referrals."""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.models import Member, Order
from membership.services import grant_tier
from membership.services.rules import add_months_local, local_midnight
from membership.sqlrows import columns, instance

from .ledger import earn, lock_account
from .models import Action, Entry, Referral, Reward
from .services import redeem, reverse_share

REFERRAL_BONUS = 500
REFERRAL_SHARE_PERCENT = 2


def redeem_reward(*, member_id: int, reward: Reward, key: str) -> Entry:
    """Spend points on a reward, in one transaction with its stock and its tier grant.

    Idempotent on ``key``; refused (nothing changes) without enough points or stock.
    The key is checked under the member's account lock before any stock is taken, so the
    same redemption sent several times at once takes one item.
    """
    with transaction.atomic():
        lock_account(member_id)
        if done := Entry.objects.filter(idempotency_key=key).first():
            return done
        if not reward.active:
            raise ValidationError(_("This reward is not available."))
        if reward.stock is not None:
            taken = Reward.objects.filter(pk=reward.pk, stock__gt=0).update(stock=F("stock") - 1)
            if not taken:
                raise ValidationError(_("%(reward)s is out of stock.") % {"reward": reward.name})
        entry = redeem(
            member_id=member_id,
            points=reward.points_cost,
            source="reward",
            source_ref=reward.name,
            key=key,
        )
        if reward.tier_id:
            start = timezone.now()
            grant_tier(
                member_id=member_id,
                tier=reward.tier,
                starts_at=start,
                ends_at=add_months_local(start, reward.months),
                source="points",
                source_ref=key,
            )
        return entry


def award_action(*, member_id: int, action: Action, key: str) -> Entry | None:
    """Points for an action, never more than the daily cap a member can earn from actions."""
    today = timezone.localdate()
    start = local_midnight(today)
    with transaction.atomic():
        lock_account(member_id)  # the cap is read and used under the account lock
        if done := Entry.objects.filter(idempotency_key=key).first():
            return done
        so_far = (
            Entry.objects.filter(
                account__member_id=member_id, source="action", created_at__gte=start
            ).aggregate(s=Sum("points"))["s"]
            or 0
        )
        points = min(action.points, settings.POINTS_DAILY_ACTION_CAP - so_far)
        if points <= 0:
            return None
        return earn(
            member_id=member_id, points=points, source="action", source_ref=action.code, key=key
        )


def refer(*, referrer: Member, friend: Member) -> Referral:
    if referrer.pk == friend.pk:
        raise ValidationError(_("A member cannot refer themselves."))
    if Referral.objects.filter(friend=friend).exists():
        raise ValidationError(_("%(name)s was already referred.") % {"name": friend.name})
    return Referral.objects.create(referrer=referrer, friend=friend)


def reward_referral(*, order: Order) -> None:
    """On a friend's paid order: 500 each after the first, then 2% of the spend to the referrer."""
    with connection.cursor() as cursor:
        cursor.execute(_friend_referral_sql(), [order.member_id])
        row = cursor.fetchone()
    referral = instance(Referral, row) if row else None
    if referral is None:
        return
    if referral.rewarded_at is None:
        for who, role in ((referral.referrer_id, "referrer"), (referral.friend_id, "friend")):
            earn(
                member_id=who,
                points=REFERRAL_BONUS,
                source="referral",
                source_ref=str(referral.pk),
                key=f"referral:{referral.pk}:{role}",
            )
        referral.rewarded_at = timezone.now()
        referral.save(update_fields=["rewarded_at"])
    share = order.amount * REFERRAL_SHARE_PERCENT // 100
    if share > 0:
        earn(
            member_id=referral.referrer_id,
            points=share,
            source="referral",
            source_ref=str(order),
            key=f"referral-share:{order.source}:{order.external_id}",
        )


@functools.cache
def _friend_referral_sql() -> str:
    """The referral of a friend (one at most), locked. Hand-written: the ORM took longer to
    build this SELECT than the database takes to answer it. (Every order asks whether
    there is one in its earning's statement, ``services.order_earning``; only a referred
    buyer's order comes here.)"""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return f"SELECT {columns(Referral)} FROM points_referral WHERE friend_id = %s{lock}"


def reverse_referral_share(*, order: Order, refund_key: str) -> Entry | None:
    """A refund of the friend's order takes back the referrer's 2% of the refunded part.

    The 500 welcome points stay: they reward the friend's first order having been paid.
    """
    return reverse_share(
        earned_key=f"referral-share:{order.source}:{order.external_id}",
        order=order,
        source="referral-refund",
        key=f"referral-refund:{refund_key}",
    )
