"""The points ledger: earning by tier, pending, oldest lots first, expiry, refunds, races."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db.models import F, Value
from django.utils import timezone
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from membership import services as membership
from membership.models import Cause, Member
from points import ledger, services
from points.models import Account, Entry, Lot
from tests.factories import MemberFactory, UserFactory

TAIPEI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=TAIPEI)


pytestmark = pytest.mark.usefixtures("frozen_clock")


def placed(spend: int = 0):
    member = MemberFactory()
    membership.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    if spend:
        buy(member, spend, "setup")
    return member


def buy(member, amount, ref, days_ago=0):
    return membership.record_order(
        member_id=member.pk,
        external_id=ref,
        amount=amount,
        placed_at=timezone.now() - dt.timedelta(days=days_ago),
    ).order


def balance(member) -> int:
    return Account.objects.get(member=member).balance


def give(member, points, key, available_days_ago=30):
    return services.earn(
        member_id=member.pk,
        points=points,
        source="test",
        source_ref=key,
        key=key,
        available_at=timezone.now() - dt.timedelta(days=available_days_ago),
    )


@pytest.mark.parametrize(
    ("spend", "tier", "points"),
    [(0, "一般會員", 12), (12_000, "銀卡", 24), (35_000, "金卡", 36), (120_000, "鑽石", 60)],
)
def test_an_order_earns_by_the_tier_held_when_it_was_placed(demo, spend, tier, points):
    # given: NT$100 = 1 pt for 一般, 2 for 銀卡, 3 for 金卡, 5 for 鑽石
    member = placed(spend)
    assert member.tier_history.first().to_tier.name == tier
    before = balance(member) if spend else 0

    # when: NT$1,250 (twelve whole hundreds)
    buy(member, 1_250, "P-1")

    # then
    assert balance(member) - before == points


def test_points_from_an_order_stay_pending_through_the_return_window(demo):
    member = placed()
    buy(member, 10_000, "P-1")

    assert balance(member) == 100
    assert services.spendable(member.pk) == 0
    with time_machine.travel(NOW + dt.timedelta(days=7, minutes=1), tick=False):
        assert services.spendable(member.pk) == 100


def test_the_same_award_posted_twice_counts_once(demo):
    member = placed()

    give(member, 50, "checkin:2026-03-01")
    give(member, 50, "checkin:2026-03-01")

    assert balance(member) == 50
    assert Entry.objects.filter(idempotency_key="checkin:2026-03-01").count() == 1


def test_a_key_reused_with_a_different_amount_is_refused(demo):
    member = placed()
    give(member, 50, "checkin:2026-03-01")

    with pytest.raises(ValidationError):
        give(member, 60, "checkin:2026-03-01")

    assert balance(member) == 50


def test_redemption_takes_the_oldest_lots_first(demo):
    member = placed()
    old = give(member, 100, "old", available_days_ago=200)
    new = give(member, 100, "new", available_days_ago=10)

    services.redeem(member_id=member.pk, points=150, source="reward", source_ref="R", key="r1")

    assert Lot.objects.get(entry=old).remaining == 0
    assert Lot.objects.get(entry=new).remaining == 50


def test_a_redemption_above_the_spendable_balance_is_refused_and_changes_nothing(demo):
    member = placed()
    give(member, 100, "g")

    with pytest.raises(ValidationError):
        services.redeem(member_id=member.pk, points=101, source="reward", source_ref="R", key="r1")

    assert balance(member) == 100
    assert not Entry.objects.filter(kind="redeem").exists()


def test_lots_expire_after_their_months_and_are_never_redeemed_after(demo):
    member = placed()
    give(member, 100, "old", available_days_ago=370)  # past 12 months
    give(member, 40, "new", available_days_ago=10)

    services.expire_due()
    services.expire_due()

    assert balance(member) == 40
    assert Entry.objects.filter(kind="expire").count() == 1
    with pytest.raises(ValidationError):
        services.redeem(member_id=member.pk, points=41, source="reward", source_ref="R", key="r1")


def test_a_partial_refund_reverses_its_share_of_the_points_while_pending(demo):
    member = placed()
    order = buy(member, 10_000, "P-1")  # 100 pts, pending

    membership.record_refund(order_id=order.pk, external_id="R1", amount=2_500)
    membership.record_refund(order_id=order.pk, external_id="R2", amount=2_500)

    assert balance(member) == 50
    assert Lot.objects.get(entry__source="order").remaining == 50


def test_cancelling_an_order_takes_back_all_the_points_it_earned(demo):
    member = placed()
    order = buy(member, 10_000, "P-1")  # 100 pts, pending

    membership.cancel_order(order_id=order.pk)
    membership.cancel_order(order_id=order.pk)  # the shop sends it twice

    assert balance(member) == 0
    assert Entry.objects.filter(source="refund").count() == 1
    call_command("check_points")


def test_cancelling_after_a_partial_refund_takes_back_only_what_is_left(demo):
    member = placed()
    order = buy(member, 10_000, "P-1")  # 100 pts
    membership.record_refund(order_id=order.pk, external_id="R1", amount=2_500)  # -25

    membership.cancel_order(order_id=order.pk)

    assert balance(member) == 0
    assert sorted(Entry.objects.filter(source="refund").values_list("points", flat=True)) == [
        -75,
        -25,
    ]


def test_a_refund_after_the_points_were_spent_records_a_shortfall_settled_by_later_earnings(demo):
    member = placed()
    order = buy(member, 10_000, "P-1")
    with time_machine.travel(NOW + dt.timedelta(days=8), tick=False):
        services.redeem(member_id=member.pk, points=80, source="reward", source_ref="R", key="r1")
        membership.record_refund(order_id=order.pk, external_id="R1", amount=10_000)
        account = Account.objects.get(member=member)
        assert (account.balance, account.shortfall) == (0, 80)

        give(member, 100, "later")

    account.refresh_from_db()
    assert (account.balance, account.shortfall) == (20, 0)
    call_command("check_points")


def test_an_operator_adjustment_needs_a_reason_and_is_audited(demo):
    from membership.models import AuditEntry

    member = placed()
    operator = UserFactory()

    with pytest.raises(ValidationError):
        services.adjust(member_id=member.pk, points=30, reason=" ", actor=operator, key="a1")
    services.adjust(member_id=member.pk, points=30, reason="客訴補償", actor=operator, key="a2")

    assert balance(member) == 30
    assert AuditEntry.objects.get(action="points.adjust").reason == "客訴補償"


@pytest.mark.parametrize("points", [30, -30])
def test_an_adjustment_posted_twice_with_its_key_is_audited_once(demo, points):
    from membership.models import AuditEntry

    # given a member with points and an adjustment already posted
    member = placed()
    give(member, 100, "start")
    operator = UserFactory()
    services.adjust(member_id=member.pk, points=points, reason="更正", actor=operator, key="a1")

    # when the same adjustment is posted again with its key
    services.adjust(member_id=member.pk, points=points, reason="更正", actor=operator, key="a1")

    # then it is one posting and one audit entry
    assert balance(member) == 100 + points
    assert AuditEntry.objects.filter(action="points.adjust").count() == 1


def test_an_adjustment_whose_audit_entry_fails_posts_nothing(demo, monkeypatch):
    # given a member with points and an audit log that refuses to write
    member = placed()
    give(member, 100, "start")

    def broken(**kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(services, "record_audit", broken)

    # when an operator adjusts the points
    with pytest.raises(RuntimeError):
        services.adjust(
            member_id=member.pk, points=30, reason="更正", actor=UserFactory(), key="a1"
        )

    # then the ledger is as it was
    assert balance(member) == 100
    assert not Entry.objects.filter(idempotency_key="a1").exists()


def test_a_deduction_from_points_past_their_date_but_not_yet_expired_is_refused(demo, frozen_clock):
    # given 300 points whose lot passed its 12 months before the expiry job ran
    member = placed()
    give(member, 300, "old", available_days_ago=0)
    frozen_clock.move_to(NOW + dt.timedelta(days=400))

    # when an operator deducts 100
    with pytest.raises(ValidationError):
        services.adjust(
            member_id=member.pk, points=-100, reason="更正", actor=UserFactory(), key="d1"
        )

    # then nothing moved: the balance and the lot still agree, for the job to expire
    assert balance(member) == Lot.objects.get(account__member=member).remaining == 300
    frozen_clock.move_to(NOW)


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), st.integers(1, 500)),
        st.tuples(st.just("many"), st.integers(1, 500)),
        st.tuples(st.just("adjust"), st.integers(-600, 600).filter(bool)),
        st.tuples(st.just("redeem"), st.integers(1, 600)),
        st.tuples(st.just("order"), st.integers(100, 30_000)),
        st.tuples(st.just("refund"), st.integers(1, 100)),
        st.tuples(st.just("advance"), st.integers(100, 800)),
        st.tuples(st.just("expire"), st.just(0)),
        st.tuples(st.just("expire"), st.just(1)),
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_random_sequences_keep_the_ledger_invariants(demo, frozen_clock, ops):
    """Every posting path: earn, the set-based earn_many (an import's opening balances),
    redeem, an order's earning and its refund's reversal, adjustments both ways, expiry."""
    member = MemberFactory()
    operator = UserFactory()
    membership.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    orders = []
    clock = NOW
    for i, (op, n) in enumerate(ops):
        try:
            if op == "earn":
                give(member, n, f"{member.pk}-e{i}", available_days_ago=0)
            elif op == "many":
                ledger.earn_many(
                    Member.objects.filter(pk=member.pk).values(
                        member_id=F("pk"),
                        points=Value(n),
                        ref=Value("t"),
                        key=Value(f"{member.pk}-m{i}"),
                    ),
                    source="import",
                )
            elif op == "adjust":
                services.adjust(
                    member_id=member.pk,
                    points=n,
                    reason="更正",
                    actor=operator,
                    key=f"{member.pk}-a{i}",
                )
            elif op == "redeem":
                services.redeem(
                    member_id=member.pk,
                    points=n,
                    source="t",
                    source_ref="t",
                    key=f"{member.pk}-r{i}",
                )
            elif op == "order":
                orders.append(buy(member, n, f"{member.pk}-o{i}"))
            elif op == "refund" and orders:
                order = orders[n % len(orders)]
                order.refresh_from_db()
                left = order.amount - order.refunded_amount
                if left:
                    membership.record_refund(
                        order_id=order.pk, external_id=f"f{i}", amount=max(1, left * n // 100)
                    )
            elif op == "advance":
                clock += dt.timedelta(days=n)
                frozen_clock.move_to(clock)
            elif op == "expire":
                services.expire_due()
        except ValidationError as refusal:
            # A refusal (e.g. redeeming more than the balance) is allowed; it must change nothing.
            note(f"step {i} {op}({n}) refused: {refusal.messages}")
        account = Account.objects.filter(member=member).first()
        if account:
            lots = list(Lot.objects.filter(account=account))
            assert account.balance >= 0
            assert account.balance == sum(e.points for e in account.entries.all())
            assert account.balance == sum(lot.remaining for lot in lots)
            assert all(
                lot.remaining == 0
                for lot in lots
                if lot.expires_at <= clock
                and Entry.objects.filter(kind="expire", source_ref=str(lot.pk)).exists()
            )
    frozen_clock.move_to(NOW)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_awards_and_redemptions_never_double_or_go_negative(demo):
    from tests.test_concurrency import run_together

    member = placed()
    give(member, 1_000, "seed")
    awards = [lambda k=k: give(member, 10, f"award-{k % 5}") for k in range(10)]  # 5 unique
    spends = [
        lambda k=k: services.redeem(
            member_id=member.pk, points=300, source="reward", source_ref="R", key=f"spend-{k}"
        )
        for k in range(6)
    ]

    errors = run_together(*awards, *spends)

    redeemed = -sum(Entry.objects.filter(kind="redeem").values_list("points", flat=True))
    assert all(isinstance(e, ValidationError) for e in errors)
    assert balance(member) == 1_000 + 50 - redeemed >= 0
    assert redeemed == 900  # three of six fit in 1,050
    assert Entry.objects.filter(idempotency_key__startswith="award-").count() == 5
    assert services.ledger_discrepancies() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_imports_of_one_opening_balance_file_racing_spends_and_awards_post_it_once(demo):
    from imports import services as imports
    from tests.importing import check, csv_bytes, importer
    from tests.test_concurrency import run_together

    members = [MemberFactory(external_id=f"A{k}") for k in range(3)]
    for member in members:
        membership.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
        give(member, 1_000, f"seed-{member.pk}")
    header = "external_id,name,opening_spend,opening_tier,opening_points\n"
    data = csv_bytes([f"{m.external_id},{m.name},,,500" for m in members], header)
    jobs = [check(data), check(data)]  # both checked before either wrote
    operator = importer()
    for job in jobs:
        imports.confirm(job.pk, actor=operator, valid_only=False)
    writes = [lambda job=job: imports.write(job.pk) for job in jobs]
    spends = [
        lambda m=m, k=k: services.redeem(
            member_id=m.pk, points=600, source="reward", source_ref="R", key=f"spend-{m.pk}-{k}"
        )
        for m in members
        for k in range(2)
    ]
    awards = [lambda m=m: give(m, 10, f"award-{m.pk}") for m in members for _ in range(2)]

    errors = run_together(*writes, *spends, *awards)

    assert all(isinstance(e, ValidationError) for e in errors), errors
    assert Entry.objects.filter(idempotency_key__startswith="import-opening:").count() == 3
    assert Entry.objects.filter(idempotency_key__startswith="award-").count() == 3
    assert services.ledger_discrepancies() == []
    for member in members:
        spent = -sum(
            Entry.objects.filter(account__member=member, kind="redeem").values_list(
                "points", flat=True
            )
        )
        assert balance(member) == 1_000 + 500 + 10 - spent >= 0


def test_the_tier_page_shows_the_balance_and_the_next_expiry(demo, client):
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    user = get_user_model().objects.create_user("amy", password="pw-for-tests-1")
    member = MemberFactory(user=user)
    membership.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    give(member, 120, "welcome", available_days_ago=0)
    client.force_login(user)

    text = client.get(reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "<strong>120</strong> points" in text
    assert "120 points expire on 2027-03-01" in text


def tier_months(demo_tiers=("銀卡", "金卡")):
    from membership.models import Tier
    from points.models import Reward

    return {
        name: Reward.objects.create(
            name=f"{name} 一個月",
            points_cost=cost,
            tier=Tier.objects.get(group__is_default=True, name=name),
            months=1,
        )
        for name, cost in zip(demo_tiers, (1_000, 3_000), strict=True)
    }


def test_1000_points_buy_a_month_of_silver_and_3000_a_month_of_gold(demo):
    from points.rewards import redeem_reward

    rewards = tier_months()
    member = placed()
    give(member, 4_000, "saved")

    redeem_reward(member_id=member.pk, reward=rewards["銀卡"], key="m1")
    member.refresh_from_db()
    assert (member.tier.name, balance(member)) == ("銀卡", 3_000)

    redeem_reward(member_id=member.pk, reward=rewards["金卡"], key="m2")
    member.refresh_from_db()
    assert (member.tier.name, balance(member)) == ("金卡", 0)


def test_a_tier_month_without_enough_points_is_refused_and_grants_nothing(demo):
    from membership.models import TierGrant
    from points.rewards import redeem_reward

    rewards = tier_months()
    member = placed()
    give(member, 999, "saved")

    with pytest.raises(ValidationError):
        redeem_reward(member_id=member.pk, reward=rewards["銀卡"], key="m1")

    assert balance(member) == 999
    assert not TierGrant.objects.filter(member=member).exists()


def test_a_reward_out_of_stock_is_refused(demo):
    from points.models import Reward
    from points.rewards import redeem_reward

    mug = Reward.objects.create(name="馬克杯", points_cost=10, stock=1)
    member = placed()
    give(member, 100, "saved")
    redeem_reward(member_id=member.pk, reward=mug, key="mug-1")

    with pytest.raises(ValidationError):
        redeem_reward(member_id=member.pk, reward=Reward.objects.get(pk=mug.pk), key="mug-2")

    assert balance(member) == 90


def test_actions_earn_at_most_200_points_a_day(demo):
    from points.models import Action
    from points.rewards import award_action

    review = Action.objects.create(code="review", name="商品評論", points=80)
    member = placed()

    for i in range(4):
        award_action(member_id=member.pk, action=review, key=f"review-{i}")
    assert balance(member) == 200
    with time_machine.travel(NOW + dt.timedelta(days=1), tick=False):
        award_action(member_id=member.pk, action=review, key="review-next-day")
    assert balance(member) == 280


def test_a_referral_pays_500_each_after_the_first_order_then_2_percent_to_the_referrer(demo):
    from points.rewards import refer

    referrer, friend = placed(), placed()
    refer(referrer=referrer, friend=friend)

    buy(friend, 10_000, "F-1")  # friend: 100 (一般) + 500, now 銀卡; referrer: 500 + 2% = 200
    buy(friend, 5_000, "F-2")  # friend: 100 at 銀卡's 2 per NT$100; referrer: 2% = 100

    assert balance(friend) == 700
    assert balance(referrer) == 800


@pytest.mark.postgres
def test_a_buyers_first_order_reads_its_factors_opens_the_account_and_posts_in_three_statements(
    demo,
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    member = placed()
    assert not Account.objects.filter(member=member).exists()

    with CaptureQueriesContext(connection) as queries:
        buy(member, 10_000, "FIRST-1")  # 一般: 1 point per NT$100

    # The factors' statement says there is no account; it is opened, then the ledger's
    # one statement posts. (Before: the factors, a failed posting, the account, the
    # posting again, and a separate look for a referral: five statements.)
    earning = ("points_tiercoefficient", "INSERT INTO points_", "FROM points_referral")
    assert len([q for q in queries if any(part in q["sql"] for part in earning)]) == 3
    assert balance(member) == 100


def test_an_order_too_small_to_earn_opens_no_points_account(demo):
    member = placed()

    buy(member, 50, "UNDER-100")  # under NT$100: no points

    assert not Account.objects.filter(member=member).exists()


def test_an_order_that_earns_nothing_opens_no_points_account_on_a_tier_without_a_rate(demo):
    from membership.models import Tier

    member = placed()
    member.refresh_from_db()
    Tier.objects.filter(pk=member.tier_id).update(points_per_100=0)

    buy(member, 10_000, "NO-RATE")

    assert not Account.objects.filter(member=member).exists()


def test_nobody_refers_themselves_or_gets_a_friend_twice(demo):
    from points.rewards import refer

    a, b, c = placed(), placed(), placed()
    refer(referrer=a, friend=b)

    with pytest.raises(ValidationError):
        refer(referrer=a, friend=a)
    with pytest.raises(ValidationError):
        refer(referrer=c, friend=b)


def test_diamond_1_5x_during_a_holiday_3x_stacks_as_the_rule_says(demo):
    from membership.models import Tier
    from points.models import Promotion, TierCoefficient

    diamond = Tier.objects.get(group__is_default=True, name="鑽石")
    TierCoefficient.objects.create(tier=diamond, coefficient="1.5")
    Promotion.objects.create(
        name="春節",
        starts_at=NOW - dt.timedelta(days=1),
        ends_at=NOW + dt.timedelta(days=1),
        multiplier=3,
    )
    Promotion.objects.create(
        name="週末",
        starts_at=NOW - dt.timedelta(days=1),
        ends_at=NOW + dt.timedelta(days=1),
        multiplier=2,
    )
    member = placed(120_000)  # 鑽石
    before = balance(member)

    buy(member, 1_000, "P-1")

    # 10 hundreds × 5 = 50, × 1.5 = 75, × 3 (the best promotion; 2× does not stack) = 225
    assert balance(member) - before == 225


def test_rounding_is_down_once_at_the_end(demo):
    from membership.models import Tier
    from points.models import TierCoefficient
    from points.services import order_points

    silver = Tier.objects.get(group__is_default=True, name="銀卡")
    TierCoefficient.objects.create(tier=silver, coefficient="1.25")

    # 1 hundred × 2 = 2, × 1.25 = 2.5 → 2; 3 hundreds × 2 = 6, × 1.25 = 7.5 → 7
    assert order_points(amount=199, tier_id=silver.pk, placed_at=NOW) == 2
    assert order_points(amount=300, tier_id=silver.pk, placed_at=NOW) == 7


def test_members_with_points_expiring_within_30_days_are_reminded_once(demo, mailoutbox):
    member = placed()
    member.email = "amy@example.com"
    member.save()
    give(member, 70, "old", available_days_ago=345)  # expires in about 20 days
    give(member, 30, "new", available_days_ago=10)

    services.send_expiry_reminders()
    services.send_expiry_reminders()

    assert len(mailoutbox) == 1
    assert mailoutbox[0].subject.startswith("您有 70 點將於")


def test_adjusting_points_in_the_admin_needs_the_permission_and_a_reason_and_happens_once(
    demo, client
):
    import uuid

    from django.contrib.auth.models import Permission
    from django.urls import reverse

    member = placed()
    url = reverse("admin:points_member_adjust", args=[member.pk])
    clerk = UserFactory()
    client.force_login(clerk)
    assert client.get(url).status_code == 403

    clerk.user_permissions.set(Permission.objects.filter(codename="adjust_points"))
    token = str(uuid.uuid4())
    no_reason = client.post(url, {"points": 50, "reason": "", "token": token})
    client.post(url, {"points": 50, "reason": "活動補點", "token": token})
    client.post(url, {"points": 50, "reason": "活動補點", "token": token})  # double click

    assert no_reason.status_code == 200
    assert balance(member) == 50
