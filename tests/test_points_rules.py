"""Birthday month, partner brands and the referrer's share on a refund — DESIGN.md's numbers."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from membership import services as membership
from points.birthday import award_birthday_bonuses
from points.models import BirthdayRule, Entry, Partner, PartnerBonus, PartnerTransfer
from points.partners import receive_from_partner, send_to_partner
from points.rewards import refer
from tests.factories import MemberFactory
from tests.test_points import NOW, balance, buy, give, placed  # noqa: F401 (NOW: frozen_clock)

pytestmark = pytest.mark.usefixtures("english", "frozen_clock")


def holding(spend: int):
    """A member placed by one order of ``spend`` today."""
    member = placed()
    buy(member, spend, f"setup-{member.pk}")
    return member


def silver_born_in_february():
    member = MemberFactory(birthday=dt.date(1990, 2, 14))
    buy(member, 12_000, "setup", days_ago=45)  # January: 銀卡 from then on (2 pts per NT$100)
    return member


@pytest.mark.parametrize(
    ("multiplier", "cap", "bonus"),
    [(30, 3_000, 3_000), (2, 3_000, 160), (30, 10_000, 4_640)],
)
def test_the_largest_order_of_the_birthday_month_earns_the_multiplier_up_to_the_cap(
    demo, multiplier, cap, bonus
):
    BirthdayRule.objects.create(multiplier=multiplier, cap=cap)
    member = silver_born_in_february()
    buy(member, 3_000, "F-small", days_ago=19)  # 60 points
    buy(member, 8_000, "F-large", days_ago=9)  # 160 points: the largest

    award_birthday_bonuses(year=2026, month=2)

    entry = Entry.objects.get(account__member=member, source="birthday")
    assert entry.points == bonus  # (×multiplier − 1) × 160, at most the cap


def test_the_largest_order_is_counted_after_its_refund(demo):
    BirthdayRule.objects.create(multiplier=2, cap=3_000)
    member = silver_born_in_february()
    buy(member, 3_000, "F-small", days_ago=19)  # 60 points
    large = buy(member, 8_000, "F-large", days_ago=9)
    membership.record_refund(order_id=large.pk, external_id="R1", amount=6_000)  # NT$2,000 left

    award_birthday_bonuses(year=2026, month=2)

    assert Entry.objects.get(account__member=member, source="birthday").points == 60


def test_the_birthday_bonus_is_given_once_a_year_and_only_in_the_birthday_month(demo):
    BirthdayRule.objects.create(multiplier=2, cap=3_000)
    member = silver_born_in_february()
    other = MemberFactory(birthday=dt.date(1990, 3, 14))
    buy(member, 8_000, "F-large", days_ago=9)
    buy(other, 8_000, "O-large", days_ago=9)

    award_birthday_bonuses(year=2026, month=2)
    award_birthday_bonuses(year=2026, month=2)

    assert Entry.objects.filter(source="birthday").count() == 1
    assert not Entry.objects.filter(account__member=other, source="birthday").exists()


def test_the_birthday_bonus_waits_out_the_return_window(demo):
    BirthdayRule.objects.create(multiplier=2, cap=3_000)
    member = silver_born_in_february()
    buy(member, 8_000, "F-large", days_ago=9)

    award_birthday_bonuses(year=2026, month=2)

    lot = Entry.objects.get(account__member=member, source="birthday").lot
    assert (lot.available_at - lot.entry.created_at).days == 7


@pytest.fixture
def partners(demo):
    from membership.models import Tier

    tiers = {t.name: t for t in Tier.objects.filter(group__is_default=True)}
    a = Partner.objects.create(code="a", name="A", rate=1)
    b = Partner.objects.create(code="b", name="B", rate="0.8", monthly_cap=3_000)
    c = Partner.objects.create(code="c", name="C", rate="1.2", min_tier=tiers["金卡"])
    for tier in ("銀卡", "金卡", "鑽石"):
        PartnerBonus.objects.create(partner=a, tier=tiers[tier], percent=10)
        PartnerBonus.objects.create(partner=b, tier=tiers[tier], percent=20)
    return {"A": a, "B": b, "C": c}


def test_brand_a_exchanges_one_to_one_with_10_percent_for_vip_members(partners):
    gold, plain = holding(35_000), placed()
    give(gold, 2_000, "g"), give(plain, 2_000, "p")

    send_to_partner(member_id=gold.pk, partner=partners["A"], points=1_000, key="a-gold")
    send_to_partner(member_id=plain.pk, partner=partners["A"], points=1_000, key="a-plain")

    sent = dict(PartnerTransfer.objects.values_list("entry__idempotency_key", "partner_points"))
    assert sent == {"a-gold": 1_100, "a-plain": 1_000}
    assert balance(plain) == 1_000


def test_brand_b_exchanges_at_0_8_with_20_percent_within_its_monthly_cap(partners):
    gold = holding(35_000)
    give(gold, 5_000, "g")
    before = balance(gold)

    send_to_partner(member_id=gold.pk, partner=partners["B"], points=1_000, key="b-1")
    with pytest.raises(ValidationError, match="the cap is 3000 and 1000 are used"):
        send_to_partner(member_id=gold.pk, partner=partners["B"], points=2_500, key="b-2")

    assert PartnerTransfer.objects.get().partner_points == 960  # 1,000 × 0.8 × 1.2
    assert balance(gold) == before - 1_000


def test_brand_c_is_for_gold_and_up_at_1_2(partners):
    silver, gold = holding(12_000), holding(35_000)
    give(silver, 2_000, "s"), give(gold, 2_000, "g")

    with pytest.raises(ValidationError, match="for 金卡 members and up"):
        send_to_partner(member_id=silver.pk, partner=partners["C"], points=1_000, key="c-s")
    send_to_partner(member_id=gold.pk, partner=partners["C"], points=1_000, key="c-g")

    assert PartnerTransfer.objects.get().partner_points == 1_200


def test_points_brought_from_a_partner_are_a_new_lot_with_the_vip_bonus(partners):
    gold = holding(35_000)

    receive_from_partner(member_id=gold.pk, partner=partners["A"], partner_points=1_000, key="in")
    receive_from_partner(member_id=gold.pk, partner=partners["A"], partner_points=1_000, key="in")

    entry = Entry.objects.get(idempotency_key="in")
    assert (entry.kind, entry.points, entry.lot.remaining) == ("partner_in", 1_100, 1_100)


def test_an_exchange_above_the_spendable_balance_is_refused_and_changes_nothing(partners):
    gold = holding(35_000)
    give(gold, 500, "g")

    with pytest.raises(ValidationError, match="Not enough points"):
        send_to_partner(member_id=gold.pk, partner=partners["A"], points=1_000, key="x")

    assert not PartnerTransfer.objects.exists()
    assert not Entry.objects.filter(kind="partner_out").exists()


def test_a_cancelled_friends_order_takes_back_the_referrers_whole_share(demo):
    referrer, friend = placed(), placed()
    refer(referrer=referrer, friend=friend)
    order = buy(friend, 10_000, "F-1")  # referrer: 500 + 2% = 200

    membership.cancel_order(order_id=order.pk)

    assert balance(referrer) == 500  # the welcome points stay; the 2% goes back


def test_a_refund_of_the_friends_order_takes_back_the_referrers_share(demo):
    referrer, friend = placed(), placed()
    refer(referrer=referrer, friend=friend)
    order = buy(friend, 10_000, "F-1")  # referrer: 500 + 2% = 200

    membership.record_refund(order_id=order.pk, external_id="R1", amount=5_000)

    assert balance(referrer) == 600  # the 500 stays; half the 200 goes back
