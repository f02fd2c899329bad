"""Exchanging points with partner brands: rate, VIP bonus by tier, monthly cap, minimum tier.

A member sends our points to a partner (spent oldest first, like a redemption) or brings
the partner's points in (a new lot). Either way one ledger entry, keyed, and a
PartnerTransfer row with the partner's side for reconciliation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Abs
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.models import Member

from .ledger import earn, existing_entry, lock_account, post, spend
from .models import Entry, Partner, PartnerBonus, PartnerTransfer

SOURCE = "partner"


@dataclass(frozen=True)
class Quote:
    ours: int
    theirs: int
    bonus_percent: int


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def bonus_percent(partner: Partner, member: Member) -> int:
    return (
        PartnerBonus.objects.filter(partner=partner, tier_id=member.tier_id)
        .values_list("percent", flat=True)
        .first()
        or 0
    )


def check_eligible(partner: Partner, member: Member) -> None:
    if not partner.active:
        raise ValidationError(_("%(partner)s takes no exchanges now.") % {"partner": partner})
    floor = partner.min_tier
    if floor is None:
        return
    tier = member.tier
    if tier is None or tier.group_id != floor.group_id or tier.rank < floor.rank:
        raise ValidationError(
            _("Exchanges with %(partner)s are for %(tier)s members and up.")
            % {"partner": partner, "tier": floor.name}
        )


def _month_start(now: dt.datetime) -> dt.datetime:
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def check_cap(account, partner: Partner, ours: int, now: dt.datetime) -> None:
    if partner.monthly_cap is None:
        return
    used = (
        Entry.objects.filter(
            account=account,
            source=SOURCE,
            source_ref=partner.code,
            created_at__gte=_month_start(now),
        ).aggregate(s=Sum(Abs("points")))["s"]
        or 0
    )
    if used + ours > partner.monthly_cap:
        raise ValidationError(
            _(
                "This would exchange %(ours)s points with %(partner)s this month; the cap is "
                "%(cap)s and %(used)s are used."
            )
            % {"ours": ours, "partner": partner, "cap": partner.monthly_cap, "used": used}
        )


def quote_send(partner: Partner, member: Member, points: int) -> Quote:
    """Our ``points`` → the partner's: × rate × (1 + VIP bonus), rounded down."""
    bonus = bonus_percent(partner, member)
    theirs = _floor(points * Decimal(partner.rate) * (100 + bonus) / Decimal(100))
    return Quote(ours=points, theirs=theirs, bonus_percent=bonus)


def quote_receive(partner: Partner, member: Member, partner_points: int) -> Quote:
    """The partner's points → ours: ÷ rate × (1 + VIP bonus), rounded down."""
    bonus = bonus_percent(partner, member)
    ours = _floor(partner_points / Decimal(partner.rate) * (100 + bonus) / Decimal(100))
    return Quote(ours=ours, theirs=partner_points, bonus_percent=bonus)


def send_to_partner(*, member_id: int, partner: Partner, points: int, key: str) -> Entry:
    """Spend ``points`` of ours for the partner's; refused, changing nothing, past any rule."""
    if points <= 0:
        raise ValidationError(_("Exchanged points must be above zero."))
    now = timezone.now()
    with transaction.atomic():
        account = lock_account(member_id)
        if entry := existing_entry(key, -points):
            return entry
        member = Member.objects.select_related("tier").get(pk=member_id)
        check_eligible(partner, member)
        check_cap(account, partner, points, now)
        quote = quote_send(partner, member, points)
        if quote.theirs <= 0:
            raise ValidationError(_("That is too few points to exchange."))
        spend(account, points, now)
        entry = post(account, Entry.Kind.PARTNER_OUT, -points, SOURCE, partner.code, key, now)
        PartnerTransfer.objects.create(
            entry=entry,
            partner=partner,
            partner_points=quote.theirs,
            bonus_percent=quote.bonus_percent,
            created_at=now,
        )
        return entry


def receive_from_partner(
    *, member_id: int, partner: Partner, partner_points: int, key: str
) -> Entry:
    """Credit ours for the partner's points as a new lot, within the same rules."""
    if partner_points <= 0:
        raise ValidationError(_("Exchanged points must be above zero."))
    now = timezone.now()
    with transaction.atomic():
        account = lock_account(member_id)
        done = Entry.objects.filter(idempotency_key=key).select_related("transfer").first()
        if done is not None:
            if done.transfer.partner_points != partner_points:
                raise ValidationError(
                    _("Idempotency key %(key)s was already used for another exchange.")
                    % {"key": key}
                )
            return done
        member = Member.objects.select_related("tier").get(pk=member_id)
        check_eligible(partner, member)
        quote = quote_receive(partner, member, partner_points)
        if quote.ours <= 0:
            raise ValidationError(_("That is too few points to exchange."))
        check_cap(account, partner, quote.ours, now)
        entry = earn(
            member_id=member_id,
            points=quote.ours,
            source=SOURCE,
            source_ref=partner.code,
            key=key,
            kind=Entry.Kind.PARTNER_IN,
        )
        PartnerTransfer.objects.create(
            entry=entry,
            partner=partner,
            partner_points=partner_points,
            bonus_percent=quote.bonus_percent,
            created_at=now,
        )
        return entry
