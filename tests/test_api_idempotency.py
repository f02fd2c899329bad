"""Idempotency keys, as Stripe has them: stored, replayed, refused when reused or in flight."""

import datetime as dt
import threading

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from api.idempotency import purge_expired
from api.models import IdempotencyRecord, Scope
from membership import services
from membership.models import Cause, Order, Refund
from points.models import Entry
from tests.api_helpers import key_client
from tests.factories import MemberFactory, build_design_programme


@pytest.fixture
def member(programme):
    member = MemberFactory(external_id="C-1")
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    return member


def earn(client, points=100, key="k-1", **extra):
    return client.post(
        "/api/v1/members/C-1/points/earnings/",
        {"points": points},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
        **extra,
    )


def order(client, amount=12_000, **extra):
    body = {
        "order_id": "SO-1",
        "member_external_id": "C-1",
        "amount": amount,
        "placed_at": "2026-11-01T10:00:00+08:00",
    }
    return client.post("/api/v1/orders/", body, format="json", **extra)


@pytest.mark.django_db
def test_the_same_key_and_body_again_replays_the_first_answer_and_writes_once(member):
    client, _key = key_client(Scope.POINTS_WRITE)
    first = earn(client)

    again = earn(client)

    assert again.status_code == first.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Entry.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_answers_422_and_writes_nothing(member):
    client, _key = key_client(Scope.POINTS_WRITE)
    earn(client, points=100)

    response = earn(client, points=999)

    assert response.status_code == 422
    assert response.json()["type"].endswith("idempotency-key-reused")
    assert list(Entry.objects.values_list("points", flat=True)) == [100]


@pytest.mark.django_db
def test_the_same_key_on_another_path_answers_422(member):
    client, _key = key_client(Scope.POINTS_WRITE)
    earn(client)

    response = client.post(
        "/api/v1/members/C-1/points/adjustments/",
        {"points": 100},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )

    assert response.status_code == 422


@pytest.mark.django_db
def test_the_same_json_spaced_differently_is_the_same_request(member):
    client, _key = key_client(Scope.POINTS_WRITE)
    url = "/api/v1/members/C-1/points/earnings/"
    client.post(url, '{"points": 5}', content_type="application/json", HTTP_IDEMPOTENCY_KEY="s")

    again = client.post(
        url, '{ "points":5 }', content_type="application/json", HTTP_IDEMPOTENCY_KEY="s"
    )

    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_a_key_still_in_flight_answers_409(member):
    client, new = key_client(Scope.POINTS_WRITE)
    first = earn(client)
    IdempotencyRecord.objects.filter(key="k-1").update(completed_at=None, status=None)

    response = earn(client)

    assert first.status_code == 201
    assert response.status_code == 409
    assert response.json()["type"].endswith("idempotency-key-in-flight")


@pytest.mark.django_db
def test_a_post_without_a_key_is_refused_naming_the_header(member):
    client, _key = key_client(Scope.POINTS_WRITE)

    response = client.post("/api/v1/members/C-1/points/earnings/", {"points": 1}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert not Entry.objects.exists()


@pytest.mark.django_db
def test_a_key_longer_than_100_characters_is_refused(member):
    client, _key = key_client(Scope.POINTS_WRITE)

    response = earn(client, key="x" * 101)

    assert response.status_code == 400


@pytest.mark.django_db
def test_an_order_without_a_key_is_keyed_by_the_shops_order_id(member):
    client, _key = key_client(Scope.ORDERS_WRITE)
    first = order(client)

    again = order(client)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_an_order_id_resent_with_another_amount_answers_422(member):
    client, _key = key_client(Scope.ORDERS_WRITE)
    order(client)

    response = order(client, amount=1)

    assert response.status_code == 422
    assert Order.objects.get().amount == 12_000


@pytest.mark.django_db
def test_a_refused_request_is_replayed_as_refused(member):
    client, _key = key_client(Scope.ORDERS_WRITE)
    order(client)
    body = {"refund_id": "R-1", "amount": 99_999}
    url = "/api/v1/orders/SO-1/refunds/"
    first = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="r")

    again = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="r")

    assert first.status_code == again.status_code == 400
    assert again.json() == first.json()
    assert again["Content-Type"] == "application/problem+json"
    assert not Refund.objects.exists()


@pytest.mark.django_db
def test_invalid_input_releases_the_key_for_the_corrected_request(member):
    client, _key = key_client(Scope.POINTS_WRITE)
    earn(client, points=-1)

    response = earn(client, points=10)

    assert response.status_code == 201
    assert Entry.objects.get().points == 10


@pytest.mark.django_db
def test_keys_belong_to_one_api_key(member):
    shop, _key = key_client(Scope.POINTS_WRITE, name="shop")
    pos, _key = key_client(Scope.POINTS_WRITE, name="pos")
    earn(shop, points=10)

    response = earn(pos, points=20)

    assert response.status_code == 201
    assert sorted(Entry.objects.values_list("points", flat=True)) == [10, 20]


@pytest.mark.django_db
def test_a_failure_after_the_service_writes_nothing_and_releases_the_key(member, monkeypatch):
    client, _key = key_client(Scope.ORDERS_WRITE)
    client.raise_request_exception = False

    def broken(*args, **kwargs):
        raise RuntimeError("the answer could not be built")

    monkeypatch.setattr("api.views.orders._order_out", broken)
    response = order(client)

    assert response.status_code == 500
    assert not Order.objects.exists()
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_keys_are_kept_30_days_then_purged(member):
    client, _key = key_client(Scope.POINTS_WRITE)
    with time_machine.travel(timezone.now() - dt.timedelta(days=31)):
        earn(client, key="old")
    earn(client, key="new")

    purged = purge_expired()

    assert purged == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.django_db
def test_the_daily_beat_task_purges_old_keys(member, settings):
    from api.tasks import purge_idempotency_keys

    client, _key = key_client(Scope.POINTS_WRITE)
    with time_machine.travel(timezone.now() - dt.timedelta(days=31)):
        earn(client, key="old")

    purge_idempotency_keys.delay()

    assert not IdempotencyRecord.objects.exists()
    assert settings.CELERY_BEAT_SCHEDULE["purge-idempotency-keys-daily"]["task"] == (
        purge_idempotency_keys.name
    )


@pytest.mark.django_db
def test_a_key_past_30_days_is_a_new_request_even_before_the_purge(member):
    client, _key = key_client(Scope.MEMBERS_WRITE)
    url = "/api/v1/members/"
    with time_machine.travel(timezone.now() - dt.timedelta(days=31)):
        client.post(
            url, {"external_id": "C-1", "name": "舊"}, format="json", HTTP_IDEMPOTENCY_KEY="o"
        )

    response = client.post(
        url, {"external_id": "C-1", "name": "新"}, format="json", HTTP_IDEMPOTENCY_KEY="o"
    )

    assert response.status_code == 200
    assert response.json()["name"] == "新"
    assert not response.has_header("Idempotent-Replayed")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_posts_of_one_order_make_one_order():
    build_design_programme()
    member = MemberFactory(external_id="C-1")
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    _client, new = key_client(Scope.ORDERS_WRITE)
    barrier = threading.Barrier(8)
    answers = []

    def send():
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {new.plaintext}")
            barrier.wait()
            response = order(client)
            answers.append((response.status_code, response.get("Idempotent-Replayed")))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert Order.objects.filter(external_id="SO-1").count() == 1
    assert len(answers) == 8
    assert answers.count((201, None)) == 1
    assert all(a in {(201, "true"), (409, None)} for a in answers if a != (201, None))
