"""The admin's long lists at a million members: searches indexes serve, filters from fixed
choices, counts the planner estimates, the same queries for few rows and many."""

import json

import pytest
from django.contrib.admin.sites import site
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from membership import services
from membership.admin.common import EstimatedCountPaginator
from membership.models import Cause, Member, Order
from points.ledger import earn
from tests.factories import MemberFactory, OrderFactory

MEMBERS = reverse("admin:membership_member_changelist")
ORDERS = reverse("admin:membership_order_changelist")
LEDGER = reverse("admin:points_entry_changelist")


def placed_member(**kwargs) -> Member:
    member = MemberFactory(**kwargs)
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    return member


def names_found(admin_client, term: str) -> set[str]:
    page = admin_client.get(MEMBERS, {"q": term})
    assert page.status_code == 200
    return {m.name for m in page.context["cl"].result_list}


@pytest.fixture
def three_members(programme):
    placed_member(name="王小明", email="xiaoming@example.com", external_id="SHOP-1")
    placed_member(name="王大同", email="datong@example.com", external_id="SHOP-2")
    placed_member(name="林美玲", email="meiling@example.tw", external_id="SHOP-3")
    placed_member(name="歐陽娜娜", email="nana@example.com", external_id="SHOP-4")


def test_a_name_search_of_three_characters_finds_names_containing_them(three_members, admin_client):
    assert names_found(admin_client, "陽娜娜") == {"歐陽娜娜"}
    assert names_found(admin_client, "林美玲") == {"林美玲"}


def test_a_name_search_of_one_or_two_characters_finds_names_starting_with_them(
    three_members, admin_client
):
    assert names_found(admin_client, "王") == {"王小明", "王大同"}
    assert names_found(admin_client, "王大") == {"王大同"}
    assert names_found(admin_client, "小明") == set()  # a trigram needs three


def test_an_email_search_finds_the_whole_address_in_any_case_or_a_part_of_it(
    three_members, admin_client
):
    assert names_found(admin_client, "XiaoMing@Example.com") == {"王小明"}
    assert names_found(admin_client, "example.tw") == {"林美玲"}


def test_an_external_id_search_finds_that_member_only(three_members, admin_client):
    assert names_found(admin_client, "SHOP-2") == {"王大同"}
    assert names_found(admin_client, "SHOP") == set()


def test_the_orders_list_finds_an_order_or_a_members_orders_by_external_id(programme, admin_client):
    member = placed_member(external_id="M-9")
    OrderFactory(member=member, external_id="A-1")
    OrderFactory(member=member, external_id="A-2")
    OrderFactory(external_id="B-1")

    def found(term):
        return {
            o.external_id for o in admin_client.get(ORDERS, {"q": term}).context["cl"].result_list
        }

    assert found("B-1") == {"B-1"}
    assert found("M-9") == {"A-1", "A-2"}


def test_the_ledger_list_finds_entries_by_key_or_by_the_members_external_id(
    programme, admin_client
):
    member = placed_member(external_id="M-7")
    earn(member_id=member.pk, points=10, source="order", source_ref="shop:A-1", key="order:A-1")
    earn(member_id=member.pk, points=20, source="order", source_ref="shop:A-2", key="order:A-2")
    other = placed_member(external_id="M-8")
    earn(member_id=other.pk, points=30, source="order", source_ref="shop:B-1", key="order:B-1")

    def found(term):
        return {e.points for e in admin_client.get(LEDGER, {"q": term}).context["cl"].result_list}

    assert found("order:B-1") == {30}
    assert found("M-7") == {10, 20}


def test_the_orders_filters_offer_the_configured_sources_and_channels_without_reading_orders(
    programme, admin_client, settings
):
    settings.ORDER_CHANNELS = ["web", "line"]
    OrderFactory(channel="web")

    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(ORDERS)

    filters = {
        f.title: [c["display"] for c in f.choices(page.context["cl"])]
        for f in page.context["cl"].filter_specs
    }
    assert filters["通路"][1:] == ["web", "line"]
    distinct = [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]
    assert not [sql for sql in distinct if "membership_order" in sql]


def test_the_orders_list_filters_by_channel(programme, admin_client):
    OrderFactory(channel="web", external_id="W-1")
    OrderFactory(channel="line", external_id="L-1")

    page = admin_client.get(ORDERS, {"channel": "line"})

    assert [o.external_id for o in page.context["cl"].result_list] == ["L-1"]


@pytest.mark.parametrize(
    ("url", "extra"),
    [(ORDERS, {}), (ORDERS, {"channel": "web"}), (LEDGER, {}), (LEDGER, {"source": "order"})],
)
def test_the_orders_and_ledger_lists_take_the_same_queries_for_few_rows_and_many(
    programme, admin_client, url, extra
):
    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url, extra).status_code == 200
        return len(ctx)

    def add(n):
        for _ in range(n):
            order = OrderFactory(channel="web")
            earn(
                member_id=order.member_id,
                points=5,
                source="order",
                source_ref=str(order),
                key=f"order:{order.pk}",
            )

    add(2)
    queries()  # the first visit also fills per-process caches
    few = queries()
    add(20)
    assert queries() == few


def test_a_members_page_takes_the_same_queries_with_few_orders_or_many(programme, admin_client):
    member = placed_member()
    url = reverse("admin:membership_member_change", args=[member.pk])

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url).status_code == 200
        return len(ctx)

    OrderFactory(member=member, amount=100)
    queries()  # the first visit also fills per-process caches
    few = queries()
    for _ in range(25):
        OrderFactory(member=member, amount=100)
    assert queries() == few


def test_a_members_page_takes_the_same_queries_with_few_inline_rows_or_many(
    programme, admin_client
):
    import datetime as dt

    from django.utils import timezone

    from membership.models import GiftIssue
    from subscriptions.models import Plan, Subscription

    member = placed_member()
    url = reverse("admin:membership_member_change", args=[member.pk])
    plans = [
        Plan.objects.create(name=f"方案{i}", price=199, tier=programme.tiers["銀卡"])
        for i in range(6)
    ]
    tiers = [t for t in programme.tiers.values() if t.group_id == member.group_id]

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url).status_code == 200
        return len(ctx)

    def add(n):
        for i in range(n):
            now = timezone.now() + dt.timedelta(seconds=len(plans) * 10 + i)
            Subscription.objects.create(
                member=member,
                plan=plans[i],
                next_plan=plans[-1 - i],
                state=Subscription.State.EXPIRED,
                card_token="tok_ok",
                period_start=now,
                period_end=now + dt.timedelta(days=30),
            )
        for tier in tiers[:n]:
            if not GiftIssue.objects.filter(member=member, tier=tier).exists():
                GiftIssue.objects.create(member=member, tier=tier, gift="禮", issued_at=now)
        earn(member_id=member.pk, points=5, source="action", source_ref="x", key=f"k{n}")

    add(1)
    queries()  # the first visit also fills per-process caches
    few = queries()
    add(3)
    assert queries() == few


def test_a_members_page_reads_the_member_with_their_group_and_tiers_in_one_query(
    programme, admin_client
):
    member = MemberFactory()
    OrderFactory(member=member, amount=50_000)
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    member.refresh_from_db()
    assert member.tier is not None
    url = reverse("admin:membership_member_change", args=[member.pk])
    admin_client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        page = admin_client.get(url)
    assert page.status_code == 200
    assert str(member.tier) in page.content.decode()
    alone = [
        q["sql"]
        for q in ctx
        if q["sql"].startswith(('SELECT "membership_vipgroup"', 'SELECT "membership_tier"'))
        and "WHERE" in q["sql"]
    ]
    assert alone == []


def test_a_page_far_into_a_list_shows_the_rows_a_plain_slice_would(programme, monkeypatch):
    for _ in range(16):
        placed_member()
    monkeypatch.setattr(EstimatedCountPaginator, "IDS_FIRST_FROM", 5)
    members = Member.objects.select_related("group", "tier").order_by("group_id", "-pk")

    page = EstimatedCountPaginator(members, 5).page(3)

    assert list(page.object_list) == list(members[10:15])
    assert [m.group.name for m in page.object_list] == [m.group.name for m in members[10:15]]


def test_a_page_far_into_a_list_skips_rows_by_their_ids_alone(programme, monkeypatch):
    for _ in range(16):
        placed_member()
    monkeypatch.setattr(EstimatedCountPaginator, "IDS_FIRST_FROM", 5)
    members = Member.objects.select_related("group", "tier").order_by("-pk")

    with CaptureQueriesContext(connection) as ctx:
        list(EstimatedCountPaginator(members, 5).page(3).object_list)

    skipping = [q["sql"] for q in ctx if "OFFSET" in q["sql"]]
    assert len(skipping) == 1
    assert skipping[0].startswith('SELECT "membership_member"."id" AS "pk" FROM')
    assert "JOIN" not in skipping[0]


@pytest.mark.postgres
def test_a_long_list_shows_the_planners_estimate_as_about_so_many(programme, admin_client):
    for _ in range(30):
        placed_member()
    with connection.cursor() as cur:
        cur.execute("ANALYZE membership_member")
    EstimatedCountPaginator.EXACT_BELOW, before = 10, EstimatedCountPaginator.EXACT_BELOW
    try:
        plain = admin_client.get(MEMBERS)
        searched = admin_client.get(MEMBERS, {"q": "0912"})  # no one: counted exactly
    finally:
        EstimatedCountPaginator.EXACT_BELOW = before

    assert plain.context["cl"].paginator.estimated
    assert "約 30 筆會員" in plain.content.decode()
    assert not searched.context["cl"].paginator.estimated
    assert searched.context["cl"].result_count == 0


@pytest.mark.postgres
def test_a_filtered_list_is_counted_from_the_planners_estimate_not_by_count(
    programme, admin_client
):
    for _ in range(30):
        placed_member()
    with connection.cursor() as cur:
        cur.execute("ANALYZE membership_member")
    EstimatedCountPaginator.EXACT_BELOW, before = 10, EstimatedCountPaginator.EXACT_BELOW
    try:
        with CaptureQueriesContext(connection) as queries:
            page = admin_client.get(MEMBERS, {"group__id__exact": programme.general.pk})
    finally:
        EstimatedCountPaginator.EXACT_BELOW = before

    assert page.context["cl"].paginator.estimated
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert not [sql for sql in counts if "membership_member" in sql]


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("term", "index"),
    [
        ("王小明", "member_name_trgm_idx"),
        ("王", "member_name_trgm_idx"),
        ("xiaoming@example.com", "member_email_upper_idx"),
        ("example.tw", "member_email_trgm_idx"),
    ],
)
def test_the_member_search_the_admin_runs_is_served_by_the_trigram_indexes(
    programme, admin_user, term, index
):
    request = RequestFactory().get(MEMBERS, {"q": term})
    request.user = admin_user
    model_admin = site.get_model_admin(Member)
    queryset, _ = model_admin.get_search_results(request, Member.objects.all(), term)
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cur:
        # Plans without the index ruled out: what is left shows the index fits the query
        # (on an empty table the planner would rather scan; bench/admin_lists.py measures).
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL enable_indexscan = off")
        cur.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cur.fetchall())
    assert index in plan


@pytest.mark.postgres
def test_the_databases_locale_cuts_a_chinese_name_into_trigrams(db):
    # Under a locale that took CJK for punctuation there would be none, and the trigram
    # index would hand back every member for the search to check one by one.
    with connection.cursor() as cur:
        cur.execute("SELECT show_trgm('王小明'), show_trgm('小明王')")
        own, other = cur.fetchone()
    assert len(own) == 4  # "  王", " 王小", "王小明", "小明 "
    assert set(own) != set(other)


@pytest.mark.postgres
def test_a_chinese_name_search_reads_only_the_names_containing_it_from_the_index(
    three_members, admin_user
):
    for n in range(20):
        placed_member(name=f"林{'美志明'[n % 3]}{n}", external_id=f"SHOP-X{n}")
    request = RequestFactory().get(MEMBERS, {"q": "王小明"})
    request.user = admin_user
    queryset, _ = site.get_model_admin(Member).get_search_results(
        request, Member.objects.all(), "王小明"
    )
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL enable_indexscan = off")
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        plan = cur.fetchone()[0]

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    # The index hands back only the name's rows: none is read and then thrown away.
    [heap] = [n for n in nodes(plan[0]["Plan"]) if n["Node Type"] == "Bitmap Heap Scan"]
    assert "member_name_trgm_idx" in json.dumps(heap)
    assert (heap["Actual Rows"], heap.get("Rows Removed by Index Recheck", 0)) == (1, 0)


@pytest.mark.postgres
def test_the_orders_list_reads_its_first_page_from_the_placed_at_index(programme):
    sql, params = Order.objects.select_related("member")[:100].query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL enable_sort = off")
        cur.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cur.fetchall())
    assert "order_placed_idx" in plan


def test_the_row_checkbox_is_the_markup_django_renders(programme):
    from django.contrib import admin

    member = placed_member(name='王"<小明>')
    model_admin = site.get_model_admin(Member)

    assert model_admin.action_checkbox(member) == admin.ModelAdmin.action_checkbox(
        model_admin, member
    )


@pytest.mark.postgres
def test_the_lists_plan_each_query_for_its_values_and_leave_the_connection_as_it_was(db):
    from membership.admin.common import custom_plans

    connection.ensure_connection()
    before = connection.connection.prepare_threshold

    with custom_plans():
        during = connection.connection.prepare_threshold

    assert before is not None  # the settings prepare repeated statements …
    assert during is None  # … the long lists do not: a generic plan ignores how rare q is
    assert connection.connection.prepare_threshold == before
