"""The KPI dashboard: every figure equals a direct computation on the same data."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from membership import services
from membership.models import Member, Tier
from membership.services.rules import add_months
from points.services import earn
from segments.dashboard import rfm_grid_table, tier_figures
from segments.kpis import month_ends, take_snapshots
from segments.models import TierSnapshot
from segments.services import compute_segments
from tests.factories import MemberFactory, OrderFactory, UserFactory


@pytest.fixture
def shop(programme):
    """Twenty members of 全館 VIP: member k bought k orders of NT$1,000, every 25 days."""
    now = timezone.now()
    for k in range(1, 21):
        member = MemberFactory(joined_at=now - dt.timedelta(days=700))
        for i in range(k):
            OrderFactory(member=member, amount=1_000, placed_at=now - dt.timedelta(days=25 * i + 1))
    services.recompute_members()
    silver = Member.objects.filter(tier__name="銀卡").first()
    earn(member_id=silver.pk, points=1_000, source="action", source_ref="t", key="t:1")
    compute_segments()
    take_snapshots()
    return programme


def direct(sql: str, params=()) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_member_counts_per_tier_equal_a_group_by_on_members(shop):
    figures = tier_figures()

    shown = {t["tier"]: t["members"] for g in figures["groups"] for t in g["tiers"]}
    counted = dict(
        direct(
            "SELECT t.name, COUNT(*) FROM membership_member m "
            "JOIN membership_tier t ON t.id = m.tier_id GROUP BY t.name"
        )
    )
    assert shown == counted
    assert figures["members"] == 20


def test_average_spend_and_lifetime_value_equal_direct_sums(shop):
    silver = Tier.objects.get(name="銀卡", group=shop.general)
    ids = list(Member.objects.filter(tier=silver).values_list("pk", flat=True))
    year_ago = timezone.now() - dt.timedelta(days=365)
    spend = sum(
        o.amount
        for m in Member.objects.filter(pk__in=ids)
        for o in m.orders.filter(placed_at__gte=year_ago)
    )

    row = next(t for g in tier_figures()["groups"] for t in g["tiers"] if t["tier"] == "銀卡")

    assert row["average_spend"] == round(spend / len(ids))
    lifetime = sum(o.amount for m in Member.objects.filter(pk__in=ids) for o in m.orders.all())
    assert row["clv"] == round(lifetime / len(ids))


def test_repurchase_and_active_shares_equal_direct_counts(shop):
    row = next(t for g in tier_figures()["groups"] for t in g["tiers"] if t["tier"] == "一般會員")
    members = Member.objects.filter(tier__name="一般會員")
    buyers = [m for m in members if m.orders.exists()]
    repeat = [m for m in buyers if m.orders.count() >= 2]
    active = [
        m for m in members if m.orders.filter(placed_at__gte=timezone.now() - dt.timedelta(days=90))
    ]

    assert row["repurchase_rate"] == round(Decimal(len(repeat) * 100) / len(buyers), 1)
    assert row["active_share"] == round(Decimal(len(active) * 100) / members.count(), 1)


def test_points_liability_is_the_outstanding_balance_at_the_points_rate(shop):
    figures = tier_figures()

    assert figures["points"] == 1_000
    assert figures["points_value"] == 199  # 1,000 × NT$0.199


def test_the_rfm_grid_counts_every_scored_member_once(shop):
    grid = rfm_grid_table()

    assert sum(sum(row[1:]) for row in grid.rows) == 20


def test_the_first_run_backfills_twelve_month_ends_from_tier_history(programme):
    member = MemberFactory(joined_at=timezone.now() - dt.timedelta(days=700))
    with time_machine.travel(timezone.now() - dt.timedelta(days=200), tick=False):
        OrderFactory(member=member, amount=12_000, placed_at=timezone.now())
        services.recompute_members()  # 銀卡 since 200 days ago

    take_snapshots()

    silver = dict(TierSnapshot.objects.filter(tier__name="銀卡").values_list("day", "members"))
    ends = month_ends(before=timezone.localdate())
    placed = [d for d in ends if d >= timezone.localdate() - dt.timedelta(days=199)]
    assert sorted(silver) == [*placed, timezone.localdate()]
    assert set(silver.values()) == {1}


def test_a_backfilled_month_end_counts_the_upgrades_of_its_own_month(programme):
    member = MemberFactory(joined_at=timezone.now() - dt.timedelta(days=700))
    upgraded = timezone.now() - dt.timedelta(days=100)
    with time_machine.travel(upgraded - dt.timedelta(hours=1), tick=False):
        OrderFactory(member=member, amount=1_000, placed_at=timezone.now())
        services.recompute_members()  # placed in 一般會員: not an upgrade
    with time_machine.travel(upgraded, tick=False):
        OrderFactory(member=member, amount=12_000, placed_at=timezone.now())
        services.recompute_members()  # 一般會員 → 銀卡

    take_snapshots()

    day = timezone.localdate(upgraded)
    month_end = add_months(day.replace(day=1), 1) - dt.timedelta(days=1)
    snapshot = TierSnapshot.objects.get(day=month_end, tier__name="銀卡")
    assert (snapshot.members, snapshot.upgrades) == (1, 1)


def test_upgrades_and_downgrades_this_month_equal_a_count_of_tier_history(shop):
    general = shop.general
    climber = Member.objects.filter(tier__name="一般會員").first()
    OrderFactory(member=climber, amount=40_000, placed_at=timezone.now())
    services.recompute_members()  # 一般會員 → 金卡 within the group: an upgrade
    services.adjust_tier(
        member_id=Member.objects.filter(tier__name="銀卡").first().pk,
        tier=shop.tiers["一般會員"],
        reason="測試降級",
        actor=UserFactory(),
        locked_until=timezone.localdate() + dt.timedelta(days=30),
    )  # 銀卡 → 一般會員 by hand: a downgrade
    take_snapshots()

    rows = {t["tier"]: t for g in tier_figures()["groups"] for t in g["tiers"]}
    month_start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    moves = direct(
        "SELECT tt.name, SUM(CASE WHEN ft.rank < tt.rank THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN ft.rank > tt.rank THEN 1 ELSE 0 END) "
        "FROM membership_tierhistory h JOIN membership_tier tt ON tt.id = h.to_tier_id "
        "JOIN membership_tier ft ON ft.id = h.from_tier_id "
        "WHERE h.from_group_id = %s AND h.to_group_id = %s AND h.created_at >= %s "
        "GROUP BY tt.name",
        [general.pk, general.pk, month_start],
    )
    assert {name: (rows[name]["upgrades"], rows[name]["downgrades"]) for name, _u, _d in moves} == {
        name: (up, down) for name, up, down in moves
    }
    assert rows["金卡"]["upgrades"] >= 1
    assert rows["一般會員"]["downgrades"] >= 1


def test_a_group_under_five_percent_of_members_is_flagged(shop):
    kol = MemberFactory()
    services.add_tag(member_id=kol.pk, tag=shop.kol_tag)
    take_snapshots()

    flagged = [g["group"] for g in tier_figures()["groups"] if g["small"]]

    assert flagged == ["KOL 合作"]  # 1 of 21 members, 4.8 %


def test_the_dashboard_page_its_charts_and_downloads_answer_the_operator(client, shop):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    page = client.get(reverse("admin:segments_dashboard"))
    chart = client.get(reverse("admin:segments_dashboard_chart", args=["tier_mix"]))
    csv = client.get(reverse("admin:segments_dashboard_csv", args=["rfm_grid"]))

    assert page.status_code == 200
    assert "銀卡" in page.content.decode()
    assert chart["Content-Type"] == "image/svg+xml"
    assert b"<svg" in chart.content
    assert b"".join(csv.streaming_content).decode("utf-8-sig").startswith("R \\ F,1,2,3,4,5")


def test_the_dashboard_is_refused_without_the_permission(client, shop):
    client.force_login(UserFactory(is_staff=True))

    assert client.get(reverse("admin:segments_dashboard")).status_code == 403
