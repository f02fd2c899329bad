"""The tier engine: groups by priority, upgrades, refunds, reviews, gifts, locks."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from membership import services
from membership.models import Cause, GiftIssue, Member, Order, TierHistory, Window
from tests.factories import MemberFactory, OrderFactory, UserFactory

TAIPEI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=TAIPEI)


pytestmark = pytest.mark.usefixtures("frozen_clock")


def placed(member: Member) -> Member:
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    member.refresh_from_db()
    return member


def order(member, amount, *, days_ago=0, ref=None):
    return services.record_order(
        member_id=member.pk,
        external_id=ref or f"{member.pk}-{amount}-{days_ago}",
        amount=amount,
        placed_at=timezone.now() - dt.timedelta(days=days_ago),
    ).order


def gifts(member) -> list[str]:
    return sorted(GiftIssue.objects.filter(member=member).values_list("gift", flat=True))


def test_a_new_member_without_orders_holds_the_base_tier_of_the_default_group(programme):
    member = placed(MemberFactory())

    assert (member.group, member.tier.name) == (programme.general, "一般會員")


def test_a_paid_order_over_the_threshold_upgrades_at_once(programme):
    member = placed(MemberFactory())

    order(member, 12_000)

    member.refresh_from_db()
    assert member.tier.name == "銀卡"
    assert gifts(member) == ["銀卡迎新禮"]


def test_jumping_several_tiers_issues_only_the_gift_of_the_tier_reached(programme):
    member = placed(MemberFactory())

    order(member, 35_000)

    member.refresh_from_db()
    assert member.tier.name == "金卡"
    assert gifts(member) == ["金卡迎新禮"]


def test_tagging_enterprise_customer_moves_a_silver_member_to_enterprise_vip_under_its_rules(
    programme,
):
    # given: DESIGN's worked example, a 全館 VIP 銀卡 member with NT$15,000 of spend
    member = placed(MemberFactory())
    order(member, 15_000)
    member.refresh_from_db()
    assert member.tier.name == "銀卡"

    # when
    services.add_tag(member_id=member.pk, tag=programme.enterprise_tag, actor=UserFactory())

    # then: re-ranked under 企業 VIP (銀牌 needs NT$200,000), new gift, old gift kept
    member.refresh_from_db()
    assert (member.group, member.tier.name) == (programme.enterprise, "銅牌企業")
    assert gifts(member) == ["企業迎新禮", "銀卡迎新禮"]
    change = TierHistory.objects.filter(member=member).first()
    assert (change.cause, change.from_tier.name, change.to_tier.name) == ("tag", "銀卡", "銅牌企業")


def test_a_member_below_the_lowest_threshold_of_their_group_holds_no_tier(programme):
    member = placed(MemberFactory())
    order(member, 4_000)

    services.add_tag(member_id=member.pk, tag=programme.enterprise_tag)

    member.refresh_from_db()
    assert (member.group, member.tier) == (programme.enterprise, None)


def test_removing_the_tag_moves_the_member_back_and_recomputes_under_the_default_group(programme):
    member = placed(MemberFactory())
    order(member, 15_000)
    services.add_tag(member_id=member.pk, tag=programme.enterprise_tag)

    services.remove_tag(member_id=member.pk, tag=programme.enterprise_tag)

    member.refresh_from_db()
    assert (member.group, member.tier.name) == (programme.general, "銀卡")
    assert gifts(member) == ["企業迎新禮", "銀卡迎新禮"]


def test_priority_decides_between_two_groups_whose_conditions_both_hold(programme):
    member = placed(MemberFactory())

    services.add_tag(member_id=member.pk, tag=programme.enterprise_tag)
    services.add_tag(member_id=member.pk, tag=programme.staff_tag)

    member.refresh_from_db()
    assert member.group == programme.staff  # 員工福利 (priority 2) before 企業 VIP (3)


def test_reordering_the_groups_changes_the_outcome(programme):
    member = placed(MemberFactory())
    services.add_tag(member_id=member.pk, tag=programme.enterprise_tag)
    services.add_tag(member_id=member.pk, tag=programme.staff_tag)

    programme.enterprise.priority, programme.staff.priority = 2, 3
    programme.enterprise.save()
    programme.staff.save()
    services.recompute_members()

    member.refresh_from_db()
    assert member.group == programme.enterprise


def test_re_sending_the_same_order_is_harmless(programme):
    member = placed(MemberFactory())
    order(member, 12_000, ref="SO-1")

    again = services.record_order(
        member_id=member.pk, external_id="SO-1", amount=12_000, placed_at=timezone.now()
    )

    assert again.created is False
    assert Order.objects.filter(member=member).count() == 1
    assert TierHistory.objects.filter(member=member, cause="order").count() == 1


def test_the_same_order_id_with_a_different_amount_is_refused(programme):
    member = placed(MemberFactory())
    order(member, 12_000, ref="SO-1")

    with pytest.raises(ValidationError):
        services.record_order(
            member_id=member.pk, external_id="SO-1", amount=13_000, placed_at=timezone.now()
        )


def test_refunding_the_order_that_earned_the_tier_re_ranks_at_once_and_keeps_the_gift(programme):
    # given: NT$5,000 of earlier spend, then an order of NT$6,000 lifts the member to 銀卡
    member = placed(MemberFactory())
    order(member, 5_000, days_ago=30)
    earning = order(member, 6_000)
    member.refresh_from_db()
    assert member.tier.name == "銀卡"

    # when: buy, upgrade, return
    services.record_refund(order_id=earning.pk, external_id="R-1", amount=6_000)

    # then
    member.refresh_from_db()
    assert member.tier.name == "一般會員"
    assert gifts(member) == ["銀卡迎新禮"]
    assert TierHistory.objects.filter(member=member).first().cause == "refund"


def test_a_partial_refund_that_leaves_the_threshold_met_keeps_the_tier(programme):
    member = placed(MemberFactory())
    earning = order(member, 12_000)

    services.record_refund(order_id=earning.pk, external_id="R-1", amount=1_000)

    member.refresh_from_db()
    assert member.tier.name == "銀卡"  # NT$11,000 still meets 銀卡's NT$10,000


def test_cancelling_the_order_that_earned_the_tier_re_ranks_at_once(programme):
    member = placed(MemberFactory())
    earning = order(member, 12_000)

    services.cancel_order(order_id=earning.pk)

    member.refresh_from_db()
    assert member.tier.name == "一般會員"


def test_a_refund_beyond_what_is_left_of_the_order_is_refused_and_changes_nothing(programme):
    member = placed(MemberFactory())
    earning = order(member, 12_000)

    with pytest.raises(ValidationError):
        services.record_refund(order_id=earning.pk, external_id="R-1", amount=12_001)

    earning.refresh_from_db()
    assert earning.refunded_amount == 0


def test_a_refund_of_an_older_order_waits_for_the_review(programme):
    # given: 銀卡 earned by a later order; an older order is then refunded
    member = placed(MemberFactory())
    older = order(member, 6_000, days_ago=60)
    order(member, 6_000)
    member.refresh_from_db()
    assert member.tier.name == "銀卡"

    services.record_refund(order_id=older.pk, external_id="R-1", amount=6_000)

    member.refresh_from_db()
    assert member.tier.name == "銀卡"  # NT$6,000 now, but falls wait for review


def test_a_fall_in_spend_from_older_orders_waits_for_review_and_happens_there(programme):
    # given: 銀卡 earned with NT$12,000; the review is set 12 months later
    member = placed(MemberFactory())
    order(member, 12_000)
    member.refresh_from_db()
    review_day = member.next_review_on
    assert review_day == dt.date(2027, 6, 15)

    # when: a year on, the order has left the rolling window but the review is not yet due
    with time_machine.travel(dt.datetime(2027, 6, 14, 12, tzinfo=TAIPEI), tick=False):
        services.review_due_members()
        member.refresh_from_db()
        assert member.tier.name == "銀卡"

    # then: on the review day the retention threshold (NT$8,000) is missed
    with time_machine.travel(dt.datetime(2027, 6, 15, 12, tzinfo=TAIPEI), tick=False):
        services.review_due_members()
    member.refresh_from_db()
    assert member.tier.name == "一般會員"
    assert TierHistory.objects.filter(member=member).first().cause == "review"


def test_the_review_keeps_the_tier_when_the_retention_threshold_is_met(programme):
    member = placed(MemberFactory())
    order(member, 31_000)  # 金卡 until the review on 2027-06-15

    with time_machine.travel(dt.datetime(2027, 6, 15, 12, tzinfo=TAIPEI), tick=False):
        services.record_order(
            member_id=member.pk,
            external_id="renewal",
            amount=24_000,
            placed_at=timezone.now() - dt.timedelta(days=100),
        )
        services.review_due_members()

    member.refresh_from_db()
    assert member.tier.name == "金卡"


def test_a_year_without_purchase_falls_to_the_base_tier_at_review(programme):
    # given: a lifetime window, so the spend alone would keep 中型網紅 for ever
    programme.kol.window = Window.LIFETIME
    programme.kol.save()
    member = MemberFactory()
    OrderFactory(member=member, amount=60_000, placed_at=NOW - dt.timedelta(days=10))
    services.change_member_tags(member_id=member.pk, add=[programme.kol_tag])
    member.refresh_from_db()
    assert member.tier.name == "中型網紅"

    with time_machine.travel(NOW + dt.timedelta(days=366), tick=False):
        Member.objects.filter(pk=member.pk).update(next_review_on=timezone.localdate())
        services.review_due_members()

    member.refresh_from_db()
    assert member.tier.name == "微型網紅"


def test_running_the_review_twice_changes_nothing_the_second_time(programme):
    member = placed(MemberFactory())
    order(member, 12_000)
    later = dt.datetime(2027, 6, 15, 12, tzinfo=TAIPEI)
    with time_machine.travel(later, tick=False):
        first = services.review_due_members()
        second = services.review_due_members()

    assert first.history_rows == 1
    assert (second.changed, second.history_rows, second.gifts) == (0, 0, 0)


def test_a_lock_keeps_the_tier_through_a_review_until_its_date(programme):
    # given: a member locked at 金卡 until 2027-07-31 with almost no spend
    member = placed(MemberFactory())
    order(member, 100)
    operator = UserFactory()
    services.adjust_tier(
        member_id=member.pk,
        tier=programme.tiers["金卡"],
        reason="VIP 客訴補償",
        actor=operator,
        locked_until=dt.date(2027, 7, 31),
    )

    # when: the review comes before the lock ends
    with time_machine.travel(dt.datetime(2027, 6, 20, 12, tzinfo=TAIPEI), tick=False):
        services.review_due_members()
        member.refresh_from_db()
        assert member.tier.name == "金卡"

    # then: after the lock, the next review applies the rules
    with time_machine.travel(dt.datetime(2027, 8, 1, 12, tzinfo=TAIPEI), tick=False):
        Member.objects.filter(pk=member.pk).update(next_review_on=timezone.localdate())
        services.review_due_members()
    member.refresh_from_db()
    assert (member.tier.name, member.locked_until) == ("一般會員", None)


def test_a_locked_adjustment_keeps_the_earned_tier_so_spending_up_to_it_later_gives_its_gift(
    programme,
):
    # given: a 銀卡 member (NT$12,000) locked at 金卡 by hand
    member = placed(MemberFactory())
    order(member, 12_000)
    services.adjust_tier(
        member_id=member.pk,
        tier=programme.tiers["金卡"],
        reason="年度大客戶，主管核准提前升等",
        actor=UserFactory(),
        locked_until=timezone.localdate() + dt.timedelta(days=120),
    )
    member.refresh_from_db()
    assert (member.tier.name, member.earned_tier.name) == ("金卡", "銀卡")

    # when: they really spend up to 金卡 (NT$32,000)
    order(member, 20_000)

    # then: the rules' upgrade is recorded and its gift issued
    member.refresh_from_db()
    assert (member.tier.name, member.earned_tier.name) == ("金卡", "金卡")
    assert GiftIssue.objects.filter(member=member, tier=programme.tiers["金卡"]).exists()


def test_a_lock_keeps_the_member_in_its_group_when_a_tag_would_move_them(programme):
    member = placed(MemberFactory())
    services.adjust_tier(
        member_id=member.pk,
        tier=programme.tiers["銀卡"],
        reason="活動補發",
        actor=UserFactory(),
        locked_until=dt.date(2026, 12, 31),
    )

    services.add_tag(member_id=member.pk, tag=programme.enterprise_tag)

    member.refresh_from_db()
    assert (member.group, member.tier.name) == (programme.general, "銀卡")


def test_a_manual_adjustment_without_a_reason_is_refused_and_changes_nothing(programme):
    member = placed(MemberFactory())

    with pytest.raises(ValidationError):
        services.adjust_tier(
            member_id=member.pk, tier=programme.tiers["金卡"], reason="  ", actor=UserFactory()
        )

    member.refresh_from_db()
    assert member.tier.name == "一般會員"


def test_a_manual_adjustment_records_who_before_after_and_why(programme):
    member = placed(MemberFactory())
    operator = UserFactory(username="amy")

    services.adjust_tier(
        member_id=member.pk, tier=programme.tiers["金卡"], reason="合約客戶", actor=operator
    )

    history = TierHistory.objects.filter(member=member).first()
    assert (history.cause, history.actor, history.reason) == ("manual", operator, "合約客戶")
    entry = member_audit(member)[0]
    assert entry.actor_name == "amy"
    assert entry.before["tier"] == programme.tiers["一般會員"].pk
    assert entry.after["tier"] == programme.tiers["金卡"].pk
    assert entry.reason == "合約客戶"


def test_a_manual_adjustment_into_a_group_the_member_does_not_qualify_for_needs_a_lock(programme):
    member = placed(MemberFactory())

    with pytest.raises(ValidationError):
        services.adjust_tier(
            member_id=member.pk,
            tier=programme.tiers["銀牌企業"],
            reason="試用",
            actor=UserFactory(),
        )


def test_an_active_tier_grant_lifts_the_tier_and_the_earned_tier_returns_when_it_ends(programme):
    member = placed(MemberFactory())

    services.grant_tier(
        member_id=member.pk,
        tier=programme.tiers["金卡"],
        starts_at=NOW,
        ends_at=NOW + dt.timedelta(days=30),
        source="points",
        source_ref="redeem-1",
    )
    member.refresh_from_db()
    assert (member.tier.name, member.earned_tier.name) == ("金卡", "一般會員")

    with time_machine.travel(NOW + dt.timedelta(days=31), tick=False):
        services.review_due_members()
    member.refresh_from_db()
    assert member.tier.name == "一般會員"


def test_a_tier_change_is_e_mailed_to_the_member_in_their_language(
    programme, mailoutbox, django_capture_on_commit_callbacks
):
    member = placed(MemberFactory(language="en", email="lin@example.com"))
    TierHistory.objects.update(notified_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        order(member, 12_000)

    assert [m.to for m in mailoutbox] == [["lin@example.com"]]
    assert "銀卡" in mailoutbox[0].subject
    assert "Your membership has been updated" in mailoutbox[0].body


def test_tier_change_e_mails_are_sent_once_even_if_the_job_runs_twice(programme, mailoutbox):
    member = placed(MemberFactory(email="wang@example.com"))

    services.send_tier_notifications()
    services.send_tier_notifications()

    assert len(mailoutbox) == 1
    assert "您的會員身分已更新" in mailoutbox[0].body
    assert member.tier_history.filter(notified_at__isnull=True).count() == 0


def member_audit(member):
    from membership.models import AuditEntry

    return list(
        AuditEntry.objects.filter(object_type="membership.member", object_id=str(member.pk))
    )


def test_a_group_checks_facts_in_an_explanation_are_every_field_as_asdict_gives_them():
    from dataclasses import asdict

    from membership.services.rules import GroupCheck

    check = GroupCheck(
        group="企業會員", matched=False, tags_required=["企業"], tags_held=[], entry_amount=30_000
    )

    assert check.as_dict() == asdict(check)
    assert check.as_dict()["tags_required"] is not check.tags_required
