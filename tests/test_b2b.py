"""Enterprise accounts: one tier shared by the master and sub-accounts, spend rolled up."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from b2b import services as b2b
from b2b.models import Enterprise, Role
from b2b.selectors import enterprise_rollup, sub_account_breakdown
from b2b.validators import is_valid_business_id
from membership import services
from membership.models import AuditEntry, Cause, Member, TierHistory, VipGroup
from tests.factories import MemberFactory, UserFactory

TAIPEI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=TAIPEI)


pytestmark = pytest.mark.usefixtures("frozen_clock")


@pytest.fixture
def demo(demo):
    """The demo programme's 企業 VIP: 標準 < 100k, 銀牌 100k, 金牌 500k, 鑽石 2M a year."""
    return VipGroup.objects.get(name="企業 VIP")


@pytest.fixture
def operator(db):
    return UserFactory(username="sales")


def placed() -> Member:
    member = MemberFactory()
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    return member


def buy(member, amount, ref):
    return services.record_order(
        member_id=member.pk, external_id=ref, amount=amount, placed_at=timezone.now()
    ).order


def enterprise_with(operator, subs: int, business_id="22099131", name="台灣積體電路"):
    master = placed()
    enterprise = b2b.create_enterprise(
        master=master, actor=operator, name=name, business_id=business_id
    )
    roles = list(Role.objects.all())
    members = []
    for i in range(subs):
        member = placed()
        b2b.add_sub_account(enterprise=enterprise, member=member, role=roles[i % 3], actor=operator)
        members.append(member)
    return enterprise, members


def tier_of(member) -> str | None:
    member.refresh_from_db()
    return member.tier.name if member.tier else None


@pytest.mark.parametrize(
    ("business_id", "valid"),
    [
        ("22099131", True),  # weighted sum 30: valid under the old rule (÷10) and the new (÷5)
        ("53160000", True),  # weighted sum 15: valid only under the 2023 rule (÷5)
        ("53160074", True),  # seventh digit 7: valid only by counting its 10 as 1
        ("53160070", True),  # seventh digit 7, counting its 10 as 0
        ("53160071", False),  # seventh digit 7, neither way
        ("22099132", False),
        ("5316007", False),
        ("5316007A", False),
    ],
)
def test_business_ids_are_checked_with_the_current_checksum_rule(business_id, valid):
    assert is_valid_business_id(business_id) is valid


def test_an_enterprise_with_an_invalid_business_id_is_refused_and_nothing_is_written(
    demo, operator
):
    master = placed()

    with pytest.raises(ValidationError):
        b2b.create_enterprise(master=master, actor=operator, name="X", business_id="22099132")

    assert Enterprise.objects.count() == 0
    assert tier_of(master) == "一般會員"


def test_making_a_member_a_master_moves_them_to_enterprise_vip_at_once(demo, operator):
    # given: a 全館 VIP 銀卡 member with NT$15,000 of spend
    master = placed()
    buy(master, 15_000, "S-1")
    assert tier_of(master) == "銀卡"

    # when
    b2b.create_enterprise(master=master, actor=operator, name="甲公司", business_id="22099131")

    # then: re-ranked under the enterprise rules, the new group's gift issued, the old kept
    master.refresh_from_db()
    assert (master.group, master.tier.name) == (demo, "標準企業")
    assert sorted(master.gifts.values_list("tier__name", flat=True)) == ["標準企業", "銀卡"]


def test_three_sub_accounts_of_40000_lift_the_enterprise_to_silver_while_each_alone_is_standard(
    demo, operator
):
    enterprise, subs = enterprise_with(operator, 3)

    for i, sub in enumerate(subs):
        buy(sub, 40_000, f"E-{i}")

    assert enterprise_rollup(enterprise).total == 120_000
    assert [tier_of(m) for m in [enterprise.master, *subs]] == ["銀牌企業"] * 4
    alone = placed()
    services.add_tag(member_id=alone.pk, tag=demo.entry_tags.get())
    buy(alone, 40_000, "ALONE")
    assert tier_of(alone) == "標準企業"


def statements_to_lift(operator, subs: int, name: str, business_id: str) -> tuple[int, list]:
    """How many statements the order lifting an enterprise of ``subs`` sub-accounts to
    銀牌企業 runs, and each sub-account's tier and new history row afterwards."""
    enterprise, members = enterprise_with(operator, subs, business_id=business_id, name=name)
    buy(members[0], 99_000, f"{name}-1")
    with CaptureQueriesContext(connection) as statements:
        buy(members[0], 1_000, f"{name}-2")
    moved = [
        (
            tier_of(m),
            m.tier_history.filter(
                to_tier=m.tier, explanation__has_key="shared_from_member_id"
            ).count(),
        )
        for m in members[1:]
    ]
    return len(statements), moved


def test_an_enterprise_moves_its_sub_accounts_in_as_many_statements_however_many_they_are(
    demo, operator
):
    # when: the same order lifts an enterprise of 3 sub-accounts and one of 12
    few, few_moved = statements_to_lift(operator, 3, "甲公司", "22099131")
    many, many_moved = statements_to_lift(operator, 12, "乙公司", "53160000")

    # then: every other sub-account moved with one history row, in the same statements
    assert few_moved == [("銀牌企業", 1)] * 2
    assert many_moved == [("銀牌企業", 1)] * 11
    assert many == few


def test_the_breakdown_reports_each_sub_account_on_its_own(demo, operator):
    enterprise, subs = enterprise_with(operator, 3)
    buy(subs[0], 40_000, "E-0")
    buy(subs[0], 5_000, "E-0b")
    buy(subs[2], 12_000, "E-2")

    rollup = enterprise_rollup(enterprise)
    lines = {
        line.member_id: (line.role, line.spend, line.orders)
        for line in sub_account_breakdown(enterprise, rollup)
    }

    assert lines[subs[0].pk] == ("採購", 45_000, 2)
    assert lines[subs[1].pk] == ("財務", 0, 0)
    assert lines[subs[2].pk] == ("倉管", 12_000, 1)
    assert rollup.total == 57_000
    assert (rollup.next_tier, rollup.gap) == ("銀牌企業", 43_000)


def test_moving_a_sub_account_re_ranks_both_enterprises_and_is_audited(demo, operator):
    first, subs = enterprise_with(operator, 3)
    second, _ = enterprise_with(operator, 0, business_id="53160000", name="乙公司")
    for i, sub in enumerate(subs):
        buy(sub, 40_000, f"E-{i}")
    assert tier_of(first.master) == "銀牌企業"
    buy(second.master, 70_000, "S2")

    b2b.add_sub_account(
        enterprise=second, member=subs[0], role=Role.objects.first(), actor=operator
    )

    assert tier_of(first.master) == "標準企業"  # NT$80,000 left
    assert tier_of(second.master) == "銀牌企業"  # NT$110,000 now
    assert tier_of(subs[0]) == "銀牌企業"
    entry = AuditEntry.objects.filter(
        action="enterprise.sub_account", object_id=str(subs[0].pk)
    ).first()
    assert (entry.before["enterprise"], entry.after["enterprise"]) == ("台灣積體電路", "乙公司")
    assert entry.actor == operator


def test_a_refund_on_one_sub_account_lowers_the_enterprise_total(demo, operator):
    enterprise, subs = enterprise_with(operator, 3)
    orders = [buy(sub, 40_000, f"E-{i}") for i, sub in enumerate(subs)]

    services.record_refund(order_id=orders[0].pk, external_id="R-0", amount=10_000)

    assert enterprise_rollup(enterprise).total == 110_000
    assert tier_of(enterprise.master) == "銀牌企業"


def test_refunding_the_sub_account_order_that_lifted_the_enterprise_re_ranks_it_at_once(
    demo, operator
):
    enterprise, subs = enterprise_with(operator, 3)
    orders = [buy(sub, 40_000, f"E-{i}") for i, sub in enumerate(subs)]

    services.record_refund(order_id=orders[2].pk, external_id="R-2", amount=40_000)

    assert [tier_of(m) for m in [enterprise.master, *subs]] == ["標準企業"] * 4
    assert TierHistory.objects.filter(member=subs[1], cause="refund").exists()


def test_removing_a_sub_account_ranks_the_member_on_their_own_again(demo, operator):
    enterprise, subs = enterprise_with(operator, 1)
    buy(subs[0], 12_000, "E-0")

    b2b.remove_sub_account(member=subs[0], actor=operator, reason="離職")

    subs[0].refresh_from_db()
    assert (subs[0].group.name, subs[0].tier.name, subs[0].tier_holder) == (
        "全館 VIP",
        "銀卡",
        None,
    )
    assert enterprise_rollup(enterprise).total == 0


def test_a_sub_account_cannot_be_adjusted_on_its_own(demo, operator):
    _enterprise, subs = enterprise_with(operator, 1)

    with pytest.raises(ValidationError):
        services.adjust_tier(
            member_id=subs[0].pk, tier=demo.tiers.get(rank=3), reason="x", actor=operator
        )


def test_the_set_based_recompute_gives_sub_accounts_their_masters_tier(demo, operator):
    enterprise, subs = enterprise_with(operator, 3)
    for i, sub in enumerate(subs):
        buy(sub, 40_000, f"E-{i}")
    Member.objects.filter(pk__in=[enterprise.master_id, *[s.pk for s in subs]]).update(
        group=None, earned_tier=None, tier=None
    )

    services.recompute_members()

    assert [tier_of(m) for m in [enterprise.master, *subs]] == ["銀牌企業"] * 4
    assert services.recompute_members().changed == 0


def test_the_enterprise_page_shows_the_roll_up_and_each_sub_account(demo, operator, admin_client):
    enterprise, subs = enterprise_with(operator, 2)
    buy(subs[0], 40_000, "E-0")

    page = admin_client.get(reverse("admin:b2b_enterprise_change", args=[enterprise.pk]))

    text = page.content.decode()
    assert page.status_code == 200
    assert "40,000" in text
    assert "60,000" in text  # the gap to 銀牌企業
    assert subs[1].name in text


def test_a_sub_accounts_member_page_shows_its_enterprise(demo, operator, admin_client):
    enterprise, subs = enterprise_with(operator, 1)

    page = admin_client.get(reverse("admin:membership_member_change", args=[subs[0].pk]))

    assert enterprise.name in page.content.decode()
