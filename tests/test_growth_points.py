"""Growth points (成長值) as a tier metric: points earned in the window from orders,
actions, referrals and birthday bonuses; a redemption or expiry never lowers them, a
refund does.

The numbers: 全館 VIP ranks by growth points over rolling 12 months, 銀卡 at 1,500
(kept at 1,200), 金卡 at 5,000 (kept at 4,000); 一般會員 earns 1 point per NT$100.
陳美玲 checks in (150), refers a friend whose first order is NT$20,000 (500 + 2 % =
900), then buys NT$45,000 herself (450): 1,500, so 銀卡 on her order.
"""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from membership import services
from membership.models import Cause, Member, Metric, Tier, VipGroup, Window
from membership.selectors import calculate_tier
from membership.services.evaluation import evaluate
from points import rewards
from points import services as points
from points.models import Action, Reward
from tests.factories import MemberFactory

TAIPEI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=TAIPEI)

pytestmark = pytest.mark.usefixtures("frozen_clock", "english")


@pytest.fixture
def growth(programme):
    VipGroup.objects.filter(pk=programme.general.pk).update(
        metric=Metric.GROWTH_POINTS, window=Window.ROLLING_12_MONTHS
    )
    for name, up, keep in [("銀卡", 1_500, 1_200), ("金卡", 5_000, 4_000)]:
        Tier.objects.filter(group=programme.general, name=name).update(
            upgrade_threshold=up, retention_threshold=keep
        )
    return programme


def buy(member, amount, ref):
    return services.record_order(
        member_id=member.pk, external_id=ref, amount=amount, placed_at=timezone.now()
    ).order


def meiling_at_1500() -> tuple[Member, object]:
    """Check-in 150, a referral 900, her own order 450: 1,500 growth points."""
    user = get_user_model().objects.create_user("meiling", password="pw-for-tests-1")
    meiling = MemberFactory(name="陳美玲", user=user)
    services.evaluate_member(member_id=meiling.pk, cause=Cause.RECOMPUTE)
    check_in = Action.objects.create(code="check-in", name="簽到", points=150)
    rewards.award_action(member_id=meiling.pk, action=check_in, key="check-in:1")
    friend = MemberFactory(name="林小華")
    rewards.refer(referrer=meiling, friend=friend)
    buy(friend, 20_000, "friend-1")
    order = buy(meiling, 45_000, "meiling-1")
    meiling.refresh_from_db()
    return meiling, order


def growth_points(member) -> int:
    return evaluate(Member.objects.get(pk=member.pk)).value


def test_a_growth_points_group_ranks_by_points_earned_from_actions_referrals_and_orders(growth):
    meiling, _order = meiling_at_1500()

    ev = evaluate(meiling)

    assert (ev.group.name, ev.value, meiling.tier.name) == ("全館 VIP", 1_500, "銀卡")
    assert ev.explanation()["metric"] == "growth_points"


def test_redeeming_points_does_not_lower_growth_points_nor_the_tier_at_review(growth, frozen_clock):
    # given: 銀卡 on 1,500 growth points, the points spendable after the return window
    meiling, _order = meiling_at_1500()
    frozen_clock.shift(dt.timedelta(days=8))
    mug = Reward.objects.create(name="保溫瓶", points_cost=1_000)

    # when: she spends 1,000 of them, and her review comes
    rewards.redeem_reward(member_id=meiling.pk, reward=mug, key="mug-1")
    Member.objects.filter(pk=meiling.pk).update(next_review_on=timezone.localdate())
    services.review_due_members()

    # then: 500 left to spend, 1,500 still earned, 銀卡 kept
    assert points.spendable(meiling.pk, timezone.now()) == 500
    assert growth_points(meiling) == 1_500
    assert Member.objects.get(pk=meiling.pk).tier.name == "銀卡"


def test_expired_points_do_not_lower_growth_points(growth, frozen_clock):
    meiling, _order = meiling_at_1500()
    frozen_clock.shift(dt.timedelta(days=200))

    points.expire_due(now=timezone.now() + dt.timedelta(days=400))

    assert growth_points(meiling) == 1_500


def test_a_refund_takes_its_points_out_of_growth_points_and_re_ranks(growth, frozen_clock):
    # given: 銀卡 earned by the NT$45,000 order, 1,000 points already spent
    meiling, order = meiling_at_1500()
    frozen_clock.shift(dt.timedelta(days=8))
    rewards.redeem_reward(
        member_id=meiling.pk,
        reward=Reward.objects.create(name="保溫瓶", points_cost=1_000),
        key="mug-1",
    )

    # when: NT$30,000 of the order is refunded (300 of its 450 points)
    services.record_refund(order_id=order.pk, external_id="r1", amount=30_000)

    # then: 1,200 growth points, below 銀卡's 1,500: the tier the order earned is gone
    assert growth_points(meiling) == 1_200
    assert Member.objects.get(pk=meiling.pk).tier.name == "一般會員"


def test_the_calculator_counts_the_points_a_hypothetical_order_would_earn(growth):
    meiling, _order = meiling_at_1500()

    # 銀卡 earns 1 point per NT$100 in the fixture: NT$350,000 is 3,500 points
    result = calculate_tier(meiling, amount=350_000, on=timezone.localdate())

    assert (result.value, result.effective.name) == (5_000, "金卡")


def test_the_member_page_says_how_many_growth_points_are_still_needed(growth, client):
    meiling, _order = meiling_at_1500()
    client.force_login(meiling.user)

    english = client.get(reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    chinese = client.get(
        reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="zh-hant"
    ).content.decode()

    assert "Your growth points: 1,500" in english
    assert "3,500 growth points more for 金卡" in english
    assert "再 3,500 成長值 升級金卡" in chinese
    assert "成長值：1,500" in chinese


def test_the_admin_explains_a_tier_by_growth_points(growth, admin_client):
    meiling, _order = meiling_at_1500()

    text = admin_client.get(
        reverse("admin:membership_member_change", args=[meiling.pk]), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()

    assert "member has earned 1,500 growth points" in text


def test_the_calculator_page_answers_in_growth_points_in_chinese(growth, client):
    meiling, _order = meiling_at_1500()
    client.force_login(meiling.user)

    text = client.get(
        reverse("members:calculator"),
        {"amount": 350_000, "on": timezone.localdate().isoformat()},
        HTTP_ACCEPT_LANGUAGE="zh-hant",
    ).content.decode()

    assert "您將成為 全館 VIP 的 <strong>金卡</strong>（累計 5,000 成長值）。" in text


def test_the_admin_explains_growth_points_in_chinese(growth, admin_client):
    meiling, _order = meiling_at_1500()

    text = admin_client.get(
        reverse("admin:membership_member_change", args=[meiling.pk]),
        HTTP_ACCEPT_LANGUAGE="zh-hant",
    ).content.decode()

    assert "依「全館 VIP」的規則，會員已累積 1,500 成長值" in text


def test_a_silver_member_who_earned_nothing_for_3_months_is_stalled_in_growth_points(
    growth, frozen_clock, client
):
    # given: 銀卡 on 1,500 growth points, then 100 days without earning any
    meiling, _order = meiling_at_1500()
    frozen_clock.shift(dt.timedelta(days=100))

    # when
    services.compute_nudges()
    client.force_login(meiling.user)
    page = client.get(reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()

    # then: 金卡 (5,000) is 3,500 growth points away
    nudge = meiling.nudges.get(kind="stalled")
    assert (nudge.tier.name, nudge.amount) == ("金卡", 3_500)
    assert "距離 金卡 還差 3,500 成長值，繼續加油！" in page


def test_a_member_who_keeps_earning_from_actions_is_not_stalled(growth, frozen_clock):
    meiling, _order = meiling_at_1500()
    frozen_clock.shift(dt.timedelta(days=100))
    check_in = Action.objects.get(code="check-in")
    rewards.award_action(member_id=meiling.pk, action=check_in, key="check-in:2")

    services.compute_nudges()

    assert not meiling.nudges.filter(kind="stalled").exists()


def test_a_growth_points_members_page_equals_the_fresh_computation_after_a_later_award(growth):
    from membership.selectors import member_dashboard, member_page
    from membership.services.summary import summary_disagreements
    from tests.test_member_summary import facts, read_page

    # given: 陳美玲 on 1,500 growth points, then a second check-in posted to the ledger
    # alone, which writes no member summary (50: the day's action cap of 200 less 150)
    meiling, _order = meiling_at_1500()
    check_in = Action.objects.get(code="check-in")
    rewards.award_action(member_id=meiling.pk, action=check_in, key="check-in:2")

    # when: the tier page reads her
    member = read_page(meiling.pk)
    page = member_page(member)

    # then: 1,550 and 3,450 more for 金卡, as computed afresh; the check skips her row
    assert (page.evaluation.value, page.progress.needed) == (1_550, 3_450)
    assert facts(page) == facts(member_dashboard(member))
    assert list(summary_disagreements()) == []
