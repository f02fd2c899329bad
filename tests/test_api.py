"""The shop's API: every endpoint, its scopes, its errors (idempotency: its own file)."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from api.keys import KEY_PREFIX
from api.models import Scope
from membership import services
from membership.models import AuditEntry, Cause, Member, MemberTag, Order, Refund
from points.models import Entry
from tests.api_helpers import key_client
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(programme):
    member = MemberFactory(external_id="C-1")
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    return member


def post(client, url, data=None, key="k-1", **extra):
    return client.post(url, data, format="json", HTTP_IDEMPOTENCY_KEY=key, **extra)


def order_body(**over):
    body = {
        "order_id": "SO-1",
        "member_external_id": "C-1",
        "amount": 12_000,
        "placed_at": timezone.now().isoformat(),
    }
    return {**body, **over}


# -- orders ----------------------------------------------------------------------------


def test_posting_an_order_records_it_and_answers_the_members_new_tier(member):
    client, _key = key_client(Scope.ORDERS_WRITE)

    response = client.post("/api/v1/orders/", order_body(), format="json")

    assert response.status_code == 201
    assert response.json()["tier"]["name"] == Member.objects.get(pk=member.pk).tier.name
    assert Order.objects.get(external_id="SO-1").amount == 12_000


def test_an_order_moves_the_members_last_order_time_to_when_it_was_placed(member):
    client, _key = key_client(Scope.ORDERS_WRITE)
    placed = timezone.now() - dt.timedelta(hours=2)

    client.post("/api/v1/orders/", order_body(placed_at=placed.isoformat()), format="json")

    assert Member.objects.get(pk=member.pk).last_order_at == placed


def test_an_order_placed_before_the_last_one_leaves_the_last_order_time(member):
    client, _key = key_client(Scope.ORDERS_WRITE)
    last = timezone.now() - dt.timedelta(hours=1)
    client.post("/api/v1/orders/", order_body(placed_at=last.isoformat()), format="json")

    earlier = (last - dt.timedelta(days=3)).isoformat()
    client.post("/api/v1/orders/", order_body(order_id="SO-2", placed_at=earlier), format="json")

    assert Member.objects.get(pk=member.pk).last_order_at == last


def test_an_order_of_a_member_nobody_shares_a_tier_with_looks_for_no_sub_accounts_to_move(member):
    client, _key = key_client(Scope.ORDERS_WRITE)

    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api/v1/orders/", order_body(amount=40_000), format="json")

    assert response.status_code == 201
    assert not [q["sql"] for q in queries if q["sql"].startswith("SELECT id, group_id, tier_id")]


@pytest.mark.postgres  # SQLite posts points through the ledger's general path, in a savepoint
def test_an_order_reads_its_member_with_the_lock_and_in_the_requests_one_transaction(member):
    client, _key = key_client(Scope.ORDERS_WRITE)

    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api/v1/orders/", order_body(amount=40_000), format="json")

    assert response.status_code == 201
    sql = [q["sql"] for q in queries]
    assert not [s for s in sql if s.startswith("SELECT id FROM membership_member")]
    # One savepoint: the request's own transaction, nested in the test's. The order's
    # recording opens none inside it (two round trips on every order).
    assert len([s for s in sql if s.startswith("SAVEPOINT")]) == 1


def test_an_order_answers_with_the_group_and_tier_the_member_row_holds_after_it(member):
    client, _key = key_client(Scope.ORDERS_WRITE)

    body = client.post("/api/v1/orders/", order_body(amount=40_000), format="json").json()

    member.refresh_from_db()
    assert body["group"] == {"id": member.group_id, "name": member.group.name}
    assert body["tier"] == {"id": member.tier_id, "name": member.tier.name, "rank": 3}


def test_a_sub_accounts_order_answers_with_the_tier_it_shares_with_its_holder(member):
    sub = MemberFactory(external_id="C-2", tier_holder=member)
    client, _key = key_client(Scope.ORDERS_WRITE)

    body = client.post(
        "/api/v1/orders/", order_body(member_external_id="C-2", amount=12_000), format="json"
    ).json()

    sub.refresh_from_db()
    assert sub.tier_id == Member.objects.get(pk=member.pk).tier_id
    assert body["tier"] == {"id": sub.tier_id, "name": sub.tier.name, "rank": sub.tier.rank}
    assert body["group"] == {"id": sub.group_id, "name": sub.group.name}


def test_an_order_for_an_unknown_member_names_the_field_and_writes_nothing(member):
    client, _key = key_client(Scope.ORDERS_WRITE)

    response = client.post(
        "/api/v1/orders/", order_body(member_external_id="nobody"), format="json"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["member_external_id"]
    assert not Order.objects.exists()


def test_an_order_with_bad_fields_names_each_field(member, english):
    client, _key = key_client(Scope.ORDERS_WRITE)

    response = client.post(
        "/api/v1/orders/",
        order_body(amount=-5, placed_at="yesterday"),
        format="json",
        HTTP_ACCEPT_LANGUAGE="en",
    )

    body = response.json()
    assert response.status_code == 400
    assert {e["field"] for e in body["errors"]} == {"amount", "placed_at"}
    assert {"type", "title", "status", "detail"} <= set(body)


def test_problems_are_in_traditional_chinese_when_asked(member):
    client, _key = key_client(Scope.ORDERS_WRITE)

    response = client.post(
        "/api/v1/orders/", order_body(amount=-5), format="json", HTTP_ACCEPT_LANGUAGE="zh-Hant"
    )

    assert response.json()["title"] == "請求內容有誤"


def test_a_refund_lowers_the_orders_counted_amount(member):
    client, _key = key_client(Scope.ORDERS_WRITE)
    client.post("/api/v1/orders/", order_body(), format="json")

    response = post(client, "/api/v1/orders/SO-1/refunds/", {"refund_id": "R-1", "amount": 2000})

    assert response.status_code == 201
    assert response.json()["order_refunded_amount"] == 2000
    assert Refund.objects.get(external_id="R-1").amount == 2000


def test_refunding_more_than_was_paid_is_refused_and_changes_nothing(member):
    client, _key = key_client(Scope.ORDERS_WRITE)
    client.post("/api/v1/orders/", order_body(), format="json")

    response = post(client, "/api/v1/orders/SO-1/refunds/", {"refund_id": "R-1", "amount": 99_000})

    assert response.status_code == 400
    assert response.json()["type"].endswith(":refused")
    assert response.json()["errors"][0]["field"] == "amount"
    assert Order.objects.get(external_id="SO-1").refunded_amount == 0


def test_a_refund_of_an_unknown_order_is_not_found(member):
    client, _key = key_client(Scope.ORDERS_WRITE)

    response = post(client, "/api/v1/orders/NOPE/refunds/", {"refund_id": "R-1", "amount": 1})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_cancelling_an_order_stops_it_counting(member):
    client, _key = key_client(Scope.ORDERS_WRITE)
    client.post("/api/v1/orders/", order_body(), format="json")

    response = post(client, "/api/v1/orders/SO-1/cancellation/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert Order.objects.get(external_id="SO-1").status == Order.Status.CANCELLED


# -- members ---------------------------------------------------------------------------


def test_putting_a_new_member_creates_them_in_the_default_group(programme):
    client, _key = key_client(Scope.MEMBERS_WRITE)

    response = client.put(
        "/api/v1/members/C-9/", {"name": "林小美", "email": "mei@example.com"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["group"]["name"] == programme.general.name
    assert Member.objects.get(external_id="C-9").email == "mei@example.com"


def test_putting_a_known_member_updates_their_details_and_audits_the_change(member):
    client, _key = key_client(Scope.MEMBERS_WRITE)

    response = client.put("/api/v1/members/C-1/", {"name": "新名字"}, format="json")

    assert response.status_code == 200
    assert Member.objects.get(pk=member.pk).name == "新名字"
    assert AuditEntry.objects.filter(action="member.change", actor_name="api:shop").exists()


def test_posting_a_member_upserts_by_the_external_id_in_the_body(programme):
    client, _key = key_client(Scope.MEMBERS_WRITE)

    response = post(client, "/api/v1/members/", {"external_id": "C-7", "name": "王大明"})

    assert response.status_code == 201
    assert Member.objects.filter(external_id="C-7").exists()


def test_reading_a_member_shows_group_tier_why_and_progress(member):
    client, _key = key_client(Scope.MEMBERS_READ)

    response = client.get("/api/v1/members/C-1/")

    body = response.json()
    member.refresh_from_db()
    assert response.status_code == 200
    assert body["tier"]["name"] == member.tier.name
    assert body["explanation"]["group"] == body["group"]["name"]
    assert body["progress"]["next_tier"]["rank"] >= 1
    assert body["progress"]["needed"] > 0


def test_reading_an_unknown_member_is_not_found(member):
    client, _key = key_client(Scope.MEMBERS_READ)

    assert client.get("/api/v1/members/nobody/").status_code == 404


def test_listing_members_filters_by_tag_and_pages_with_a_cursor(programme):
    client, _key = key_client(Scope.MEMBERS_READ)
    tagged = [MemberFactory(external_id=f"T{i}") for i in range(3)]
    MemberFactory(external_id="other")
    for m in tagged:
        MemberTag.objects.create(member=m, tag=programme.staff_tag)

    first = client.get("/api/v1/members/", {"tag": programme.staff_tag.name, "page_size": 2})
    second = client.get(first.json()["next"])

    ids = [m["external_id"] for m in first.json()["results"] + second.json()["results"]]
    assert sorted(ids) == ["T0", "T1", "T2"]
    assert second.json()["next"] is None


def test_listing_members_filters_by_group_and_tier(member, programme):
    client, _key = key_client(Scope.MEMBERS_READ)
    MemberFactory(external_id="unplaced")
    member.refresh_from_db()

    response = client.get("/api/v1/members/", {"group": member.group_id, "tier": member.tier_id})

    assert [m["external_id"] for m in response.json()["results"]] == ["C-1"]


def test_listing_members_updated_since_finds_only_members_changed_after(member, programme):
    client, _key = key_client(Scope.MEMBERS_WRITE)
    since = timezone.now()
    old = MemberFactory(external_id="old", joined_at=since - dt.timedelta(days=30))
    Member.objects.filter(pk=member.pk).update(tier_since=since - dt.timedelta(days=1))
    reader, _key = key_client(Scope.MEMBERS_READ, name="reader")
    client.put("/api/v1/members/C-1/", {"name": "改過"}, format="json")

    response = reader.get("/api/v1/members/", {"updated_since": since.isoformat()})

    ids = [m["external_id"] for m in response.json()["results"]]
    assert ids == ["C-1"]
    assert old.external_id not in ids


def test_an_invalid_filter_is_a_problem_naming_the_filter(member):
    client, _key = key_client(Scope.MEMBERS_READ)

    response = client.get("/api/v1/members/", {"updated_since": "not a time"})

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "updated_since"


# -- tags ------------------------------------------------------------------------------


def test_adding_a_tag_can_move_the_member_to_another_group(member, programme):
    client, _key = key_client(Scope.MEMBERS_WRITE)

    response = post(client, "/api/v1/members/C-1/tags/", {"tag": programme.enterprise_tag.name})

    assert response.status_code == 200
    assert response.json()["group"]["name"] == programme.enterprise.name
    assert Member.objects.get(pk=member.pk).group == programme.enterprise


def test_adding_an_unknown_tag_names_the_field(member):
    client, _key = key_client(Scope.MEMBERS_WRITE)

    response = post(client, "/api/v1/members/C-1/tags/", {"tag": "沒有這個"})

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "tag"


def test_removing_a_tag_takes_it_off_the_member(member, programme):
    client, _key = key_client(Scope.MEMBERS_WRITE)
    services.add_tag(member_id=member.pk, tag=programme.staff_tag)

    response = client.delete(f"/api/v1/members/C-1/tags/{programme.staff_tag.name}/")

    assert response.status_code == 200
    assert response.json()["tags"] == []
    assert not MemberTag.objects.filter(member=member).exists()


# -- points ----------------------------------------------------------------------------


def test_points_show_balance_spendable_and_the_next_expiry(member):
    client, _key = key_client(Scope.POINTS_READ, Scope.POINTS_WRITE)
    post(client, "/api/v1/members/C-1/points/earnings/", {"points": 300, "reason": "活動"})

    response = client.get("/api/v1/members/C-1/points/")

    body = response.json()
    assert body["balance"] == 300
    assert body["spendable"] == 300
    assert body["next_expiry_points"] == 300


def test_a_member_without_points_has_a_zero_balance(member):
    client, _key = key_client(Scope.POINTS_READ)

    response = client.get("/api/v1/members/C-1/points/")

    assert response.json() == {
        "balance": 0,
        "spendable": 0,
        "next_expiry_at": None,
        "next_expiry_points": None,
    }


def test_entries_are_filtered_by_kind(member):
    client, _key = key_client(Scope.POINTS_READ, Scope.POINTS_WRITE)
    post(client, "/api/v1/members/C-1/points/earnings/", {"points": 300}, key="e1")
    post(
        client,
        "/api/v1/members/C-1/points/adjustments/",
        {"points": -50, "reason": "更正"},
        key="a1",
    )

    response = client.get("/api/v1/members/C-1/points/entries/", {"kind": "adjust"})

    assert [e["points"] for e in response.json()["results"]] == [-50]


def test_an_adjustment_needs_a_reason(member):
    client, _key = key_client(Scope.POINTS_WRITE)

    response = post(client, "/api/v1/members/C-1/points/adjustments/", {"points": 10})

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "reason"
    assert not Entry.objects.exists()


def test_an_adjustment_below_zero_is_refused(member):
    client, _key = key_client(Scope.POINTS_WRITE)

    response = post(
        client, "/api/v1/members/C-1/points/adjustments/", {"points": -10, "reason": "更正"}
    )

    assert response.status_code == 400
    assert response.json()["type"].endswith(":refused")
    assert not Entry.objects.exists()


def test_an_adjustment_is_audited_under_the_keys_name(member):
    client, _key = key_client(Scope.POINTS_WRITE)

    post(client, "/api/v1/members/C-1/points/adjustments/", {"points": 10, "reason": "補點"})

    entry = AuditEntry.objects.get(action="points.adjust")
    assert (entry.actor_name, entry.reason) == ("api:shop", "補點")


# -- the tier calculator ---------------------------------------------------------------


def test_the_calculator_answers_the_tier_after_a_spend(member):
    client, _key = key_client(Scope.MEMBERS_READ)
    on = (timezone.localdate() + dt.timedelta(days=10)).isoformat()

    response = client.post(
        "/api/v1/tier-calculator/",
        {"member_external_id": "C-1", "amount": 100_000, "on": on},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["tier"]["rank"] > (member.tier.rank if member.tier else 0)
    assert response.json()["value"] >= 100_000


def test_the_calculator_refuses_a_date_in_the_past(member):
    client, _key = key_client(Scope.MEMBERS_READ)

    response = client.post(
        "/api/v1/tier-calculator/",
        {"member_external_id": "C-1", "amount": 1, "on": "2000-01-01"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "on"


# -- keys and scopes -------------------------------------------------------------------

SCOPED = [
    ("post", "/api/v1/orders/", Scope.ORDERS_WRITE),
    ("post", "/api/v1/orders/SO-1/refunds/", Scope.ORDERS_WRITE),
    ("post", "/api/v1/orders/SO-1/cancellation/", Scope.ORDERS_WRITE),
    ("get", "/api/v1/members/", Scope.MEMBERS_READ),
    ("post", "/api/v1/members/", Scope.MEMBERS_WRITE),
    ("get", "/api/v1/members/C-1/", Scope.MEMBERS_READ),
    ("put", "/api/v1/members/C-1/", Scope.MEMBERS_WRITE),
    ("post", "/api/v1/members/C-1/tags/", Scope.MEMBERS_WRITE),
    ("delete", "/api/v1/members/C-1/tags/x/", Scope.MEMBERS_WRITE),
    ("get", "/api/v1/members/C-1/points/", Scope.POINTS_READ),
    ("get", "/api/v1/members/C-1/points/entries/", Scope.POINTS_READ),
    ("post", "/api/v1/members/C-1/points/earnings/", Scope.POINTS_WRITE),
    ("post", "/api/v1/members/C-1/points/adjustments/", Scope.POINTS_WRITE),
    ("post", "/api/v1/tier-calculator/", Scope.MEMBERS_READ),
]


@pytest.mark.parametrize(("method", "url", "scope"), SCOPED)
def test_a_key_without_the_scope_is_refused_with_403(member, method, url, scope):
    others = [s for s in Scope.values if s != scope]
    client, _key = key_client(*others)

    response = getattr(client, method)(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k")

    assert response.status_code == 403
    assert scope in response.json()["detail"]


@pytest.mark.parametrize(("method", "url", "scope"), SCOPED)
def test_a_revoked_key_is_refused_with_401(member, method, url, scope):
    from api.keys import revoke_api_key

    client, new = key_client(scope)
    revoke_api_key(api_key_id=new.api_key.pk, actor=None)

    response = getattr(client, method)(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_request_without_a_key_is_refused_with_401(member):
    from rest_framework.test import APIClient

    response = APIClient().get("/api/v1/members/C-1/")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_a_wrong_secret_with_a_real_prefix_is_refused(member):
    client, new = key_client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer vip_{new.api_key.prefix}_wrong")

    assert client.get("/api/v1/members/C-1/").status_code == 401


def test_a_key_records_when_it_was_last_used(member):
    client, new = key_client(Scope.MEMBERS_READ)

    client.get("/api/v1/members/C-1/")

    new.api_key.refresh_from_db()
    assert new.api_key.last_used_at is not None


def test_only_a_hash_of_the_secret_is_stored(member):
    _client, new = key_client()

    # The secret is what follows the prefix (it may itself hold an underscore).
    secret = new.plaintext[len(KEY_PREFIX) :].partition("_")[2]
    assert secret not in new.api_key.secret_hash
    assert len(new.api_key.secret_hash) == 64


def test_too_many_requests_answer_429_with_retry_after(member, settings):
    settings.API_RATE_LIMIT = "2/min"
    client, _key = key_client(Scope.MEMBERS_READ)

    answers = [client.get("/api/v1/members/C-1/") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2]["Retry-After"]) > 0
    assert answers[2]["Content-Type"] == "application/problem+json"
