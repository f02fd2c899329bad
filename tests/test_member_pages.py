"""The member's own pages: tier, progress, benefits, calculator — and only their own data."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from b2b import services as b2b
from b2b.models import Role
from membership import services
from membership.models import Cause, Member
from membership.selectors import calculate_tier
from tests.factories import MemberFactory, OrderFactory, UserFactory

TAIPEI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=TAIPEI)


pytestmark = pytest.mark.usefixtures("frozen_clock")


def member_with_login(username="amy", spend=0, **kwargs):
    user = get_user_model().objects.create_user(username, password="pw-for-tests-1")
    member = MemberFactory(user=user, **kwargs)
    if spend:
        OrderFactory(member=member, amount=spend, placed_at=timezone.now() - dt.timedelta(days=20))
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    member.refresh_from_db()
    return member


def page(client, member, lang="en", url=None):
    client.force_login(member.user)
    return client.get(url or reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE=lang)


def test_a_silver_member_with_12000_sees_18000_more_for_gold(demo, client):
    member = member_with_login(spend=12_000)

    text = page(client, member).content.decode()

    assert "銀卡" in text
    assert "NT$18,000 more for 金卡" in text
    assert "Your qualifying spend: NT$12,000" in text


def test_the_page_is_in_traditional_chinese_by_default(demo, client):
    member = member_with_login(spend=12_000)

    text = page(client, member, lang="zh-hant").content.decode()

    assert "還差 NT$18,000 即可升級為 金卡" in text
    assert 'lang="zh-Hant"' in text


def test_the_benefits_of_every_tier_are_shown_with_the_members_own_highlighted(demo, client):
    member = member_with_login(spend=12_000)

    text = page(client, member).content.decode()

    for tier in ["一般會員", "銀卡", "金卡", "鑽石"]:
        assert tier in text
    assert text.count('aria-current="true"') == 1
    assert "全館 9 折" in text  # a 金卡 benefit line


def test_a_calendar_year_window_shows_the_day_it_closes(demo, client):
    member = member_with_login(spend=40_000)
    b2b.create_enterprise(master=member, actor=UserFactory(), name="甲公司", business_id="22099131")

    text = page(client, member).content.decode()

    assert "NT$60,000 more by 2026-12-31 for 銀牌企業" in text


def test_spend_that_leaves_the_rolling_window_before_the_review_does_not_keep_the_tier(
    demo, client
):
    # given: NT$12,000 spent 20 days ago; 銀卡 is kept with NT$8,000 in the 12 months
    # before the review on 2027-06-15, by when that order has left the window
    member = member_with_login(spend=12_000)

    text = page(client, member).content.decode()

    assert "Spend NT$8,000 more to keep 銀卡 at the next review" in text
    assert "review on 2027-06-15" in text


def test_spend_still_in_the_window_on_review_day_counts_toward_keeping_the_tier(demo, client):
    # given: a 銀卡 member reviewed in a month, when NT$12,000 spent 20 days ago still
    # counts (NT$8,000 keeps 銀卡)
    member = member_with_login(spend=12_000)
    Member.objects.filter(pk=member.pk).update(
        next_review_on=timezone.localdate() + dt.timedelta(days=30)
    )

    text = page(client, member).content.decode()

    assert "You already meet what keeps 銀卡 (NT$8,000)" in text


@pytest.mark.parametrize("amount", [0, 5_000, 9_999, 10_000, 29_999, 30_000, 99_999, 100_000])
def test_the_calculator_agrees_with_the_engine(demo, amount):
    # given: a member with NT$3,000 already, and a date two weeks ahead
    member = member_with_login(spend=3_000)
    on = timezone.localdate() + dt.timedelta(days=14)

    # when: the calculator's answer, then the real order on that day
    predicted = calculate_tier(member, amount=amount, on=on)
    with time_machine.travel(dt.datetime.combine(on, dt.time(12), tzinfo=TAIPEI), tick=False):
        services.record_order(
            member_id=member.pk, external_id="CALC", amount=amount, placed_at=timezone.now()
        )

    # then
    member.refresh_from_db()
    assert predicted.effective.name == member.tier.name


def test_the_calculator_page_answers_in_words(demo, client):
    member = member_with_login(spend=12_000)
    client.force_login(member.user)

    response = client.get(
        reverse("members:calculator"),
        {"amount": 20_000, "on": "2026-07-01"},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert "You would hold <strong>金卡</strong>" in response.content.decode()


def test_the_calculator_refuses_a_date_in_the_past(demo, client):
    member = member_with_login()
    client.force_login(member.user)

    response = client.get(reverse("members:calculator"), {"amount": 1, "on": "2020-01-01"})

    assert response.context["form"].errors["on"]
    assert response.context["result"] is None


def test_the_pages_calculator_is_labelled_in_the_members_language(demo, client):
    member = member_with_login(spend=12_000)

    english = page(client, member, lang="en").content.decode()
    chinese = page(client, member, lang="zh-hant").content.decode()

    assert '<label for="id_amount">If I spend (NT$)</label>' in english
    assert '<label for="id_amount">如果我消費（NT$）</label>' in chinese


def test_the_pages_calculator_proposes_the_day_thirty_days_after_today(demo, client):
    member = member_with_login(spend=12_000)
    field = 'name="on" value="{}"'

    today = page(client, member).content.decode()
    with time_machine.travel(NOW + dt.timedelta(days=1), tick=False):
        tomorrow = page(client, member).content.decode()

    assert field.format("2026-07-15") in today
    assert field.format("2026-07-16") in tomorrow


def test_the_pages_links_are_the_routes_addresses(demo, client):
    member = member_with_login(spend=12_000)

    text = page(client, member).content.decode()

    for route in ("members:my_tier", "members:calculator", "logout", "set_language", "my_data"):
        assert f'"{reverse(route)}"' in text


def test_an_order_is_dated_by_the_day_in_taipei(demo, client):
    member = member_with_login()
    placed = dt.datetime(2026, 6, 1, 16, 30, tzinfo=dt.UTC)
    OrderFactory(member=member, amount=500, placed_at=placed)
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)

    text = page(client, member).content.decode()

    assert "2026-06-02 · NT$500" in text  # 00:30 on the 2nd in Taipei


def test_another_members_order_gives_404(demo, client):
    mine = member_with_login("amy", spend=1_000)
    theirs = member_with_login("bob", spend=2_000)
    their_order = theirs.orders.get()

    own = page(client, mine, url=reverse("members:order", args=[mine.orders.get().pk]))
    other = page(client, mine, url=reverse("members:order", args=[their_order.pk]))

    assert own.status_code == 200
    assert other.status_code == 404


def test_a_visitor_who_is_not_logged_in_is_sent_to_log_in(db, client):
    response = client.get(reverse("members:my_tier"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_login_without_a_membership_gets_404(db, client):
    client.force_login(UserFactory())

    assert client.get(reverse("members:my_tier")).status_code == 404


def test_a_sub_account_sees_its_enterprise_tier_but_not_another_enterprises_data(demo, client):
    operator = UserFactory()
    mine = b2b.create_enterprise(
        master=MemberFactory(), actor=operator, name="甲公司", business_id="22099131"
    )
    other = b2b.create_enterprise(
        master=MemberFactory(), actor=operator, name="乙公司", business_id="53160000"
    )
    buyer = member_with_login("buyer")
    b2b.add_sub_account(enterprise=mine, member=buyer, role=Role.objects.first(), actor=operator)
    other_order = services.record_order(
        member_id=other.master_id, external_id="O-1", amount=150_000, placed_at=timezone.now()
    ).order

    text = page(client, buyer).content.decode()
    peek = page(client, buyer, url=reverse("members:order", args=[other_order.pk]))

    assert "甲公司" in text
    assert "標準企業" in text
    assert "乙公司" not in text
    assert "150,000" not in text
    assert peek.status_code == 404


def test_the_page_shows_the_subscription(demo, client):
    from subscriptions import services as subs
    from subscriptions.demo import create_demo_plans

    plans = {p.name: p for p in create_demo_plans()}
    member = member_with_login()
    subs.subscribe(member=member, plan=plans["進階方案"], card_token="tok_ok")

    text = page(client, member).content.decode()

    assert "進階方案" in text
    assert "renews on 2026-07-15 (NT$499)" in text
    assert "金卡" in text


def test_the_number_of_queries_does_not_grow_with_the_members_history(demo, client):
    member = member_with_login(spend=1_000)
    client.force_login(member.user)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("members:my_tier")).status_code == 200
        return len(ctx)

    queries()  # the programme is read once, then cached
    few = queries()
    for i in range(40):
        OrderFactory(member=member, external_id=f"H{i}", amount=500, placed_at=timezone.now())
        services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    member.tier_history.model.objects.bulk_create(
        [
            member.tier_history.model(member=member, cause="order", created_at=timezone.now())
            for _ in range(30)
        ]
    )

    assert queries() == few


def test_an_operator_runs_the_calculator_for_a_member_in_the_admin(demo, admin_client):
    member = member_with_login(spend=12_000)

    response = admin_client.get(
        reverse("admin:membership_member_calculator", args=[member.pk]),
        {"amount": 20_000, "on": "2026-07-01"},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 200
    assert "<strong>金卡</strong>" in response.content.decode()
    assert "32,000" in response.content.decode()


def test_the_admin_calculator_offers_a_date_a_month_ahead(demo, admin_client):
    member = member_with_login(spend=12_000)

    response = admin_client.get(reverse("admin:membership_member_calculator", args=[member.pk]))

    assert 'value="2026-07-15"' in response.content.decode()  # today is 2026-06-15


def test_a_changed_threshold_shows_at_once_though_the_programme_is_cached(demo, client):
    from membership.models import Tier

    member = member_with_login(spend=12_000)
    page(client, member)  # reads and caches the programme
    gold = Tier.objects.get(group__is_default=True, name="金卡")
    gold.upgrade_threshold = 40_000
    gold.save()

    body = page(client, member).content.decode()

    assert "NT$28,000 more for 金卡" in body
