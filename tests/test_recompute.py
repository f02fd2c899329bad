"""The set-based recompute: same answers as the single-member engine, idempotent, chunked."""

import datetime as dt
import random

import pytest
from django.core.management import call_command
from django.db.models import ProtectedError
from django.utils import timezone

from membership import services
from membership.models import (
    GiftIssue,
    Member,
    MemberTag,
    Metric,
    Order,
    Tier,
    TierGrant,
    TierHistory,
    VipGroup,
    Window,
)
from membership.services.rules import Mode
from points.models import Account, Entry
from tests.factories import MemberFactory, OrderFactory

TAIPEI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=TAIPEI)


pytestmark = pytest.mark.usefixtures("frozen_clock")


def random_members(programme, n: int, seed: int = 7) -> list[Member]:
    """Members with random orders (some refunded, some cancelled, some old) and tags."""
    rng = random.Random(seed)
    tags = [programme.enterprise_tag, programme.staff_tag, programme.kol_tag]
    members = []
    for i in range(n):
        member = MemberFactory()
        for j in range(rng.randint(0, 6)):
            amount = rng.choice([500, 3_000, 8_000, 12_000, 40_000, 120_000, 250_000])
            OrderFactory(
                member=member,
                external_id=f"R{i}-{j}",
                amount=amount,
                refunded_amount=rng.choice([0, 0, 0, amount // 2, amount]),
                status=rng.choice(["paid"] * 5 + ["cancelled"]),
                placed_at=NOW - dt.timedelta(days=rng.randint(0, 800)),
            )
        for tag in tags:
            if rng.random() < 0.2:
                MemberTag.objects.create(member=member, tag=tag)
        members.append(member)
    return members


def scramble(programme, members, seed: int = 11) -> None:
    """Give members earned tiers, locks and grants the rules alone would not give them now."""
    rng = random.Random(seed)
    for member in Member.objects.filter(pk__in=[m.pk for m in members]).select_related("group"):
        tiers = list(member.group.tiers.all())
        earned = rng.choice([None, *tiers])
        member.earned_tier = member.tier = earned
        if rng.random() < 0.15:
            member.locked_tier = rng.choice(list(programme.general.tiers.all()))
            member.locked_until = timezone.localdate() + dt.timedelta(days=rng.choice([-1, 30]))
        member.save()
        if rng.random() < 0.15:
            TierGrant.objects.create(
                member=member,
                tier=rng.choice(tiers),
                starts_at=NOW - dt.timedelta(days=1),
                ends_at=NOW + dt.timedelta(days=rng.choice([-0.5, 10])),
                source="test",
                source_ref=f"g{member.pk}",
            )


def state(members) -> dict[int, tuple]:
    return {
        m.pk: (m.group_id, m.earned_tier_id, m.tier_id, m.next_review_on)
        for m in Member.objects.filter(pk__in=[m.pk for m in members])
    }


@pytest.mark.parametrize("mode", [Mode.UPGRADE, Mode.REVIEW, Mode.RERANK])
def test_the_bulk_recompute_agrees_with_the_single_member_engine(programme, mode):
    # given: the same random members placed once, then copied
    members = random_members(programme, 80)
    services.recompute_members()
    scramble(programme, members)
    Member.objects.update(next_review_on=timezone.localdate())  # every member due
    start = state(members)

    # when: one path is the set-based SQL, the other the Python rules per member
    services.recompute_members(mode=mode)
    bulk = state(members)
    Member.objects.filter(pk__in=start).update(next_review_on=timezone.localdate())
    for pk, (group_id, earned_id, tier_id, _review) in start.items():
        Member.objects.filter(pk=pk).update(
            group_id=group_id, earned_tier_id=earned_id, tier_id=tier_id
        )
    for member in members:
        services.evaluate_member(member_id=member.pk, mode=mode, cause="recompute")
    single = state(members)

    # then: the group and tiers agree (the review date is only moved by the bulk review)
    assert {k: v[:3] for k, v in bulk.items()} == {k: v[:3] for k, v in single.items()}


def rank_by_growth_points(programme) -> None:
    """Three groups rank by growth points, one in each window, with thresholds in points."""
    for group, window in [
        (programme.general, Window.ROLLING_12_MONTHS),
        (programme.enterprise, Window.CALENDAR_YEAR),
        (programme.kol, Window.LIFETIME),
    ]:
        VipGroup.objects.filter(pk=group.pk).update(metric=Metric.GROWTH_POINTS, window=window)
        for tier in group.tiers.order_by("rank"):
            Tier.objects.filter(pk=tier.pk).update(
                upgrade_threshold=(tier.rank - 1) * 1_000, retention_threshold=(tier.rank - 1) * 800
            )


def random_ledgers(members, seed: int = 13) -> None:
    """Ledger entries of every kind and source, some old, some refunds with a shortfall."""
    rng = random.Random(seed)
    kinds = [
        ("earn", "order"),
        ("earn", "action"),
        ("earn", "referral"),
        ("earn", "birthday"),
        ("earn", "operator"),
        ("earn", "import"),
        ("partner_in", "partner"),
        ("redeem", "reward"),
        ("expire", "expiry"),
        ("reverse", "refund"),
        ("reverse", "referral-refund"),
        ("reverse", "shortfall"),
    ]
    for member in members:
        account = Account.objects.create(member=member)
        for j in range(rng.randint(0, 8)):
            kind, source = rng.choice(kinds)
            points = rng.choice([50, 200, 700, 1_500])
            negative = kind in ("redeem", "expire", "reverse")
            Entry.objects.create(
                account=account,
                kind=kind,
                points=-points if negative else points,
                shortfall=rng.choice([0, 100]) if kind == "reverse" else 0,
                source=source,
                source_ref="test",
                idempotency_key=f"random:{member.pk}:{j}",
                created_at=NOW - dt.timedelta(days=rng.randint(0, 800)),
            )


@pytest.mark.parametrize("mode", [Mode.UPGRADE, Mode.REVIEW, Mode.RERANK])
def test_the_bulk_recompute_agrees_with_the_single_member_engine_on_growth_points(programme, mode):
    # given: groups ranked by growth points, members with random ledgers
    rank_by_growth_points(programme)
    members = random_members(programme, 60, seed=5)
    random_ledgers(members)
    services.recompute_members()
    scramble(programme, members)
    Member.objects.update(next_review_on=timezone.localdate())
    start = state(members)

    # when: one path is the set-based SQL, the other the Python rules per member
    services.recompute_members(mode=mode)
    bulk = state(members)
    for pk, (group_id, earned_id, tier_id, _review) in start.items():
        Member.objects.filter(pk=pk).update(
            group_id=group_id, earned_tier_id=earned_id, tier_id=tier_id
        )
    for member in members:
        services.evaluate_member(member_id=member.pk, mode=mode, cause="recompute")
    single = state(members)

    # then: the same groups and tiers, and the points made a difference to some
    assert {k: v[:3] for k, v in bulk.items()} == {k: v[:3] for k, v in single.items()}
    general = [v for v in single.values() if v[0] == programme.general.pk]
    assert len({v[1] for v in general}) > 1


def test_a_cold_recompute_places_every_member_and_issues_gifts(programme):
    member = MemberFactory()
    OrderFactory(member=member, amount=35_000)
    untouched = MemberFactory()

    result = services.recompute_members()

    member.refresh_from_db()
    untouched.refresh_from_db()
    assert (member.tier.name, untouched.tier.name) == ("金卡", "一般會員")
    assert result.history_rows == 2
    assert list(GiftIssue.objects.filter(member=member).values_list("gift", flat=True)) == [
        "金卡迎新禮"
    ]


def test_running_the_recompute_twice_changes_nothing_the_second_time(programme):
    random_members(programme, 40)
    services.recompute_members()
    history, gifts = TierHistory.objects.count(), GiftIssue.objects.count()

    second = services.recompute_members()

    assert (second.changed, second.history_rows, second.gifts) == (0, 0, 0)
    assert (TierHistory.objects.count(), GiftIssue.objects.count()) == (history, gifts)


def test_the_recompute_works_in_chunks_of_members(programme):
    members = random_members(programme, 25)

    services.recompute_members(chunk=4)

    assert Member.objects.filter(pk__in=[m.pk for m in members], group__isnull=True).count() == 0


def test_the_recompute_writes_only_members_whose_tier_changed(programme):
    member = MemberFactory()
    services.recompute_members()
    OrderFactory(member=member, amount=12_000)

    result = services.recompute_members()

    assert result.changed == 1
    member.refresh_from_db()
    assert member.tier.name == "銀卡"


def test_the_recompute_does_not_lower_a_tier_before_review(programme):
    member = MemberFactory()
    order = OrderFactory(member=member, amount=12_000)
    services.recompute_members()
    Order.objects.filter(pk=order.pk).update(refunded_amount=12_000)

    services.recompute_members()

    member.refresh_from_db()
    assert member.tier.name == "銀卡"


def test_the_recompute_command_reports_what_it_changed(programme, capsys):
    OrderFactory(member=MemberFactory(), amount=12_000)

    call_command("recompute_tiers")

    assert "1 members changed" in capsys.readouterr().out


def test_the_recompute_does_nothing_before_any_group_is_configured(db):
    MemberFactory()

    result = services.recompute_members()

    assert (result.changed, result.history_rows) == (0, 0)


def test_tagging_many_members_at_once_moves_them_like_tagging_one_by_one(programme):
    members = [MemberFactory() for _ in range(6)]
    OrderFactory(member=members[0], amount=15_000)
    services.recompute_members()

    changed, result = services.change_tag_for_members(
        member_ids=[m.pk for m in members[:4]], tag=programme.enterprise_tag, add=True, reason="B2B"
    )

    assert changed == 4
    assert result.history_rows == 4
    groups = [Member.objects.get(pk=m.pk).group for m in members]
    assert groups == [programme.enterprise] * 4 + [programme.general] * 2
    assert (
        Member.objects.get(pk=members[0].pk).tier.name == "銅牌企業"
    )  # NT$15,000 < 銀牌's 200,000


def test_tagging_members_who_already_hold_the_tag_changes_and_audits_nothing(programme):
    from membership.models import AuditEntry

    members = [MemberFactory() for _ in range(3)]
    services.change_tag_for_members(
        member_ids=[m.pk for m in members], tag=programme.enterprise_tag, add=True
    )
    audits = AuditEntry.objects.count()

    changed, result = services.change_tag_for_members(
        member_ids=[m.pk for m in members], tag=programme.enterprise_tag, add=True
    )

    assert (changed, result.history_rows) == (0, 0)
    assert AuditEntry.objects.count() == audits


def test_a_tier_named_in_history_and_gifts_cannot_be_deleted(programme):
    # given: a member placed in 金卡 by the recompute, with its history row and gift
    member = MemberFactory()
    OrderFactory(member=member, external_id="P-1", amount=40_000, placed_at=NOW)
    services.recompute_members()
    member.refresh_from_db()
    tier = member.tier
    assert TierHistory.objects.filter(to_tier=tier).exists()
    Member.objects.filter(pk=member.pk).update(group=None, earned_tier=None, tier=None)

    # when: the tier, now named only by the history row and the gift, is deleted
    with pytest.raises(ProtectedError):
        tier.delete()

    # then: it is still there (the rows naming it carry no database constraint)
    assert Tier.objects.filter(pk=tier.pk).exists()
