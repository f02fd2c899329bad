"""The nightly segment job: RFM cells, lifecycle stages and behaviours as system tags."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from membership import services
from membership.models import Cause, Member, MemberTag, Tag, TagHistory, TierHistory
from membership.services.system_tags import ensure_system_tag
from points.models import Promotion
from segments.models import Lifecycle, MemberSegment, RfmCell
from segments.services import compute_segments
from tests.factories import MemberFactory, OrderFactory

NOW = timezone.make_aware(dt.datetime(2026, 6, 15, 12, 0))


def days_ago(days: int) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def buyer(*, orders: list[tuple[int, int]], **member) -> Member:
    """A member with orders given as (days ago, NT$)."""
    m = MemberFactory(**member)
    for days, amount in orders:
        OrderFactory(member=m, amount=amount, placed_at=days_ago(days))
    return m


def segment(member: Member) -> MemberSegment:
    return MemberSegment.objects.get(member=member)


def tags_of(member: Member) -> set[str]:
    return set(MemberTag.objects.filter(member=member).values_list("tag__name", flat=True))


@pytest.fixture
def ten_buyers(db):
    """Ten buyers; buyer k bought k times, k × NT$1,000 each, last 10·(10 − k) + 5 days ago."""
    return [
        buyer(orders=[(10 * (10 - k) + 5 + i, 1_000 * k) for i in range(k)]) for k in range(1, 11)
    ]


def test_the_most_recent_frequent_and_big_buyer_scores_555_and_is_important_value(ten_buyers):
    compute_segments(now=NOW)

    best = segment(ten_buyers[-1])
    assert (best.recency, best.frequency, best.monetary) == (5, 5, 5)
    assert best.rfm_cell == RfmCell.IMPORTANT_VALUE
    assert "RFM：重要價值" in tags_of(ten_buyers[-1])


def test_the_least_recent_rare_small_buyer_scores_111_and_is_lost(ten_buyers):
    compute_segments(now=NOW)

    worst = segment(ten_buyers[0])
    assert (worst.recency, worst.frequency, worst.monetary) == (1, 1, 1)
    assert worst.rfm_cell == RfmCell.LOST


def test_scores_split_ten_buyers_into_quintiles_of_two(ten_buyers):
    compute_segments(now=NOW)

    scores = [segment(m).monetary for m in ten_buyers]
    assert scores == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_a_first_order_ten_days_ago_makes_a_new_customer(db):
    member = buyer(orders=[(10, 1_500)])

    compute_segments(now=NOW)

    assert segment(member).lifecycle == Lifecycle.NEW
    assert "生命週期：新客" in tags_of(member)


def test_no_order_for_400_days_is_churned(db):
    member = buyer(orders=[(400, 3_000), (500, 2_000)])

    compute_segments(now=NOW)

    assert segment(member).lifecycle == Lifecycle.CHURNED
    assert "生命週期：流失" in tags_of(member)


def test_a_last_order_120_days_ago_is_declining(db):
    member = buyer(orders=[(120, 3_000), (200, 2_000)])

    compute_segments(now=NOW)

    assert segment(member).lifecycle == Lifecycle.DECLINING


def test_five_orders_recently_make_a_mature_customer_and_two_a_growing_one(db):
    mature = buyer(orders=[(d, 1_000) for d in (5, 40, 80, 120, 200)])
    growing = buyer(orders=[(5, 1_000), (60, 1_000)])

    compute_segments(now=NOW)

    assert segment(mature).lifecycle == Lifecycle.MATURE
    assert segment(growing).lifecycle == Lifecycle.GROWING


def test_sixty_percent_of_orders_in_promotion_windows_is_a_promotion_hunter(db):
    Promotion.objects.create(
        name="雙 11", starts_at=days_ago(50), ends_at=days_ago(40), multiplier=Decimal(3)
    )
    hunter = buyer(orders=[(45, 800), (44, 900), (42, 700), (100, 1_000), (150, 1_200)])
    steady = buyer(orders=[(45, 800), (100, 1_000), (150, 1_200), (200, 900), (10, 500)])

    compute_segments(now=NOW)

    assert segment(hunter).promotion_orders == 3
    assert segment(hunter).promotion_share == Decimal("0.6")
    assert segment(hunter).promotion_hunter
    assert "行為：精打細算型" in tags_of(hunter)
    assert not segment(steady).promotion_hunter


def test_buying_in_every_quarter_for_over_a_year_is_a_brand_loyalist(db):
    loyal = buyer(orders=[(20, 1_000), (110, 1_000), (200, 1_000), (290, 1_000), (420, 1_000)])
    new = buyer(orders=[(20, 1_000), (110, 1_000), (200, 1_000), (290, 1_000)])

    compute_segments(now=NOW)

    assert segment(loyal).quarters_active == 4
    assert segment(loyal).loyalist
    assert not segment(new).loyalist  # first order under 365 days ago


def test_return_rate_counts_refunded_and_cancelled_orders(db):
    member = buyer(orders=[(10, 1_000), (20, 1_000), (30, 1_000)])
    order = member.orders.order_by("placed_at").first()
    order.refunded_amount = 200
    order.save()
    OrderFactory(member=member, amount=500, placed_at=days_ago(5), status="cancelled")

    compute_segments(now=NOW)

    assert segment(member).return_rate == Decimal(2) / Decimal(4)
    assert segment(member).period_spend == 2_800


def test_leaving_a_segment_closes_its_tag_history(db):
    member = buyer(orders=[(10, 1_500)])
    compute_segments(now=NOW)

    compute_segments(now=NOW + dt.timedelta(days=40))

    spans = TagHistory.objects.filter(member=member, tag__name="生命週期：新客")
    assert [(s.entered_at, s.left_at) for s in spans] == [(NOW, NOW + dt.timedelta(days=40))]
    assert "生命週期：新客" not in tags_of(member)
    assert "生命週期：成長" in tags_of(member)


def test_running_the_job_twice_changes_nothing(ten_buyers):
    compute_segments(now=NOW)
    history = TagHistory.objects.count()

    second = compute_segments(now=NOW)

    assert second.tag_changes == 0
    assert TagHistory.objects.count() == history


def test_an_operator_cannot_add_or_remove_a_system_tag(ten_buyers):
    compute_segments(now=NOW)
    system = Tag.objects.get(name="RFM：重要價值")

    with pytest.raises(ValidationError):
        services.add_tag(member_id=ten_buyers[0].pk, tag=system)
    with pytest.raises(ValidationError):
        services.remove_tag(member_id=ten_buyers[-1].pk, tag=system)
    with pytest.raises(ValidationError):
        services.change_tag_for_members(member_ids=[ten_buyers[0].pk], tag=system, add=True)


def test_replacing_an_operators_tags_keeps_the_system_tags(ten_buyers):
    compute_segments(now=NOW)
    vip = Tag.objects.create(name="VIP 客服")

    services.change_member_tags(member_id=ten_buyers[-1].pk, replace_with=[vip])

    assert tags_of(ten_buyers[-1]) >= {"VIP 客服", "RFM：重要價值"}


def test_a_segment_that_is_a_groups_entry_tag_moves_the_member_there(programme):
    member = buyer(orders=[(d, 5_000) for d in (5, 40, 80, 120, 200)])
    services.recompute_members(now=NOW)
    mature = ensure_system_tag(name="生命週期：成熟", description="")
    programme.kol.entry_tags.add(mature)

    compute_segments(now=NOW)

    member.refresh_from_db()
    assert member.group == programme.kol
    assert TierHistory.objects.filter(member=member, cause=Cause.TAG).exists()


@pytest.mark.postgres
def test_the_job_gives_the_same_segments_on_postgresql(ten_buyers):
    compute_segments(now=NOW)

    assert [segment(m).rfm_cell for m in (ten_buyers[0], ten_buyers[-1])] == [
        RfmCell.LOST,
        RfmCell.IMPORTANT_VALUE,
    ]
