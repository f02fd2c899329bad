"""Webhooks out: owed with the change, signed, retried with backoff, turned off after a day
of failures, redelivered from the admin. A real HTTP receiver on 127.0.0.1 checks them."""

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from api.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from api.webhooks.endpoints import create_endpoint, validate_url
from api.webhooks.sending import send_due
from membership import services
from membership.models import AuditEntry, Cause, Member, TierHistory
from points.ledger import earn
from tests.factories import MemberFactory, OrderFactory, UserFactory, staff_with
from tests.webhook_receiver import start_receiver, verify

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def receiver():
    server, receiver = start_receiver()
    yield receiver
    server.shutdown()
    server.server_close()


def endpoint_for(receiver, *events: str):
    return create_endpoint(
        url=receiver.url, events=list(events or WebhookEvent.values), actor=UserFactory()
    )


def silver_member(programme) -> Member:
    """A placed 全館 VIP member who then spends NT$12,000: 一般會員 → 銀卡."""
    member = MemberFactory(external_id="M-100")
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    services.record_order(
        member_id=member.pk, external_id="SO-1", amount=12_000, placed_at=timezone.now()
    )
    return Member.objects.get(pk=member.pk)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


# --- what is owed ------------------------------------------------------------------------


def test_an_upgrade_reaches_the_receiver_signed_with_the_endpoint_secret(
    programme, receiver, clock
):
    # given
    new = endpoint_for(receiver, WebhookEvent.TIER_CHANGED)
    silver_member(programme)

    # when
    send_due()

    # then: placed in 一般會員, then 銀卡 — two events, each verified as the README says
    events = [verify(new.secret, r.headers["X-VIP-Signature"], r.body) for r in receiver.received]
    assert [e["type"] for e in events] == ["tier.changed", "tier.changed"]
    assert events[-1]["data"]["to"]["tier"] == "銀卡"
    assert events[-1]["data"]["from"]["tier"] == "一般會員"
    assert events[-1]["data"]["member"]["external_id"] == "M-100"
    assert receiver.received[-1].headers["X-VIP-Event-Id"] == events[-1]["id"]


def test_a_body_changed_on_the_way_fails_verification(programme, receiver, clock):
    new = endpoint_for(receiver, WebhookEvent.TIER_CHANGED)
    silver_member(programme)
    send_due()
    sent = receiver.received[-1]

    with pytest.raises(ValueError, match="bad signature"):
        verify(new.secret, sent.headers["X-VIP-Signature"], sent.body.replace(b"M-100", b"M-999"))


def test_a_signature_older_than_five_minutes_is_refused_as_a_replay(programme, receiver, clock):
    new = endpoint_for(receiver, WebhookEvent.TIER_CHANGED)
    silver_member(programme)
    send_due()
    sent = receiver.received[-1]

    clock.shift(dt.timedelta(minutes=5, seconds=1))

    with pytest.raises(ValueError, match="replay window"):
        verify(new.secret, sent.headers["X-VIP-Signature"], sent.body)


def test_only_the_events_an_endpoint_chose_are_owed_to_it(programme, receiver, clock):
    endpoint_for(receiver, WebhookEvent.NUDGE_CREATED)

    silver_member(programme)

    assert not WebhookDelivery.objects.exists()


def test_a_change_rolled_back_owes_no_webhook(programme, receiver, clock):
    endpoint_for(receiver, WebhookEvent.POINTS_POSTED)
    member = MemberFactory()

    def a_posting_that_fails():
        with transaction.atomic():
            earn(member_id=member.pk, points=100, source="action", source_ref="x", key="k-1")
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        a_posting_that_fails()

    assert not WebhookDelivery.objects.exists()


def test_points_posted_carries_the_points_and_the_balance_after(programme, receiver, clock):
    endpoint_for(receiver, WebhookEvent.POINTS_POSTED)
    member = MemberFactory(external_id="M-7")

    earn(member_id=member.pk, points=120, source="action", source_ref="check-in", key="k-1")
    earn(member_id=member.pk, points=120, source="action", source_ref="check-in", key="k-1")
    send_due()

    assert len(receiver.received) == 1  # the same posting twice is one event
    data = receiver.received[0].event["data"]
    assert (data["points"], data["balance"], data["member"]["external_id"]) == (120, 120, "M-7")


def test_a_set_based_recompute_owes_its_tier_changes_in_one_statement(programme, clock):
    # given: 30 members, 12 of them with NT$12,000 of orders (銀卡)
    WebhookEndpoint.objects.create(
        url="https://shop.example.com/hooks", events=[WebhookEvent.TIER_CHANGED], secret="s"
    )
    members = MemberFactory.create_batch(30)
    for member in members[:12]:
        OrderFactory(member=member, amount=12_000, placed_at=NOW - dt.timedelta(days=3))

    # when
    with CaptureQueriesContext(transaction.get_connection()) as queries:
        services.recompute_members()

    # then: one delivery per tier change, written by one INSERT … SELECT
    inserts = [q for q in queries if q["sql"].startswith("INSERT INTO api_webhookdelivery")]
    assert len(inserts) == 1
    assert WebhookDelivery.objects.count() == TierHistory.objects.count() == 30
    assert WebhookDelivery.objects.filter(payload__to__tier="銀卡").count() == 12


def test_nudges_recorded_by_the_monthly_job_are_owed_to_the_shop(programme, clock):
    WebhookEndpoint.objects.create(
        url="https://shop.example.com/hooks", events=[WebhookEvent.NUDGE_CREATED], secret="s"
    )
    member = MemberFactory()
    OrderFactory(member=member, amount=9_600, placed_at=NOW - dt.timedelta(days=3))
    services.recompute_members()

    created = services.compute_nudges()

    delivery = WebhookDelivery.objects.get()
    assert created == 1
    assert delivery.payload["kind"] == "about_to_upgrade"
    assert delivery.payload["amount"] == 400


# --- retries -----------------------------------------------------------------------------


def test_a_receiver_answering_500_gets_it_again_after_a_minute_then_never_again(
    programme, receiver, clock
):
    # given: the receiver fails the first try
    endpoint_for(receiver, WebhookEvent.POINTS_POSTED)
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")
    receiver.answer_with(500)

    # when: tried now, again 30 s later (not due yet), and after the minute's backoff
    send_due()
    clock.shift(dt.timedelta(seconds=30))
    send_due()
    clock.shift(dt.timedelta(seconds=31))
    send_due()
    clock.shift(dt.timedelta(hours=2))
    send_due()

    # then: two tries of one event, delivered, and nothing after the success
    delivery = WebhookDelivery.objects.get()
    assert len(receiver.received) == 2
    assert len(set(receiver.event_ids())) == 1
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert (delivery.attempts, delivery.response_code) == (2, 200)


def test_a_failed_try_is_told_in_words_with_the_receivers_answer_below(programme, receiver, clock):
    endpoint_for(receiver, WebhookEvent.POINTS_POSTED)
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")
    receiver.answer_with(503)

    send_due()

    words, detail = WebhookDelivery.objects.get().last_error.split("\n")
    assert words == "對方端點回應 HTTP 503。"
    assert detail == "技術細節：ok"


def test_a_receiver_that_cannot_be_reached_is_named_in_the_log(programme, receiver, clock):
    endpoint = endpoint_for(receiver, WebhookEvent.POINTS_POSTED).endpoint
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url="http://127.0.0.1:9/hooks")
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")

    send_due()

    words, detail = WebhookDelivery.objects.get().last_error.split("\n")
    assert words == "無法連線到 127.0.0.1。"
    assert detail.startswith("技術細節：ConnectionError")


def test_the_waits_between_tries_double(programme, receiver, clock):
    endpoint_for(receiver, WebhookEvent.POINTS_POSTED)
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")
    receiver.answer_with(502, 502, 502, 502)

    waits = []
    for _try in range(4):
        send_due()
        delivery = WebhookDelivery.objects.get()
        waits.append(delivery.next_attempt_at - timezone.now())
        clock.move_to(delivery.next_attempt_at)

    assert waits == [dt.timedelta(minutes=m) for m in (1, 2, 4, 8)]


def test_an_endpoint_failing_for_a_day_is_turned_off_and_the_operators_told(
    programme, receiver, clock, django_capture_on_commit_callbacks
):
    # given: an operator who may change endpoints, and a receiver that always fails
    operator = staff_with("change_webhookendpoint")
    operator.email = "ops@example.com"
    operator.save()
    endpoint = endpoint_for(receiver, WebhookEvent.POINTS_POSTED).endpoint
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")
    receiver.answer_with(*[503] * 100)

    # when: every try for a day
    with django_capture_on_commit_callbacks(execute=True):
        while (delivery := WebhookDelivery.objects.get()).next_attempt_at:
            clock.move_to(delivery.next_attempt_at)
            send_due()

    # then
    endpoint.refresh_from_db()
    assert not endpoint.active
    assert endpoint.disabled_at == NOW + dt.timedelta(hours=24)
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.FAILED
    assert AuditEntry.objects.filter(action="webhook_endpoint.disable").exists()
    assert [m.to for m in mail.outbox] == [[operator.email]]
    assert "HTTP 503" in mail.outbox[0].body


def test_a_turned_off_endpoint_is_sent_nothing(programme, receiver, clock):
    endpoint = endpoint_for(receiver, WebhookEvent.POINTS_POSTED).endpoint
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)

    assert send_due() == 0
    assert receiver.received == []


def test_one_success_forgets_the_endpoint_failures(programme, receiver, clock):
    endpoint = endpoint_for(receiver, WebhookEvent.POINTS_POSTED).endpoint
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")
    receiver.answer_with(500)
    send_due()
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since == NOW

    clock.shift(dt.timedelta(minutes=1))
    send_due()

    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is None


# --- the admin ---------------------------------------------------------------------------


def test_the_operator_redelivers_from_the_log(programme, receiver, clock, client):
    # given: a delivered event
    endpoint_for(receiver, WebhookEvent.POINTS_POSTED)
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")
    send_due()
    delivery = WebhookDelivery.objects.get()
    operator = staff_with("view_webhookdelivery", "change_webhookdelivery")
    client.force_login(operator)

    # when: the operator ticks it and redelivers
    response = client.post(
        "/admin/api/webhookdelivery/",
        {"action": "redeliver_selected", "_selected_action": [delivery.pk]},
        follow=True,
    )
    send_due()

    # then: the same event a second time, and the action in the audit log
    assert "已重新排入 1 則 Webhook" in response.content.decode()
    assert receiver.event_ids() == [delivery.event_id, delivery.event_id]
    assert WebhookDelivery.objects.get().attempts == 2
    assert AuditEntry.objects.filter(action="webhook_delivery.redeliver", actor=operator).exists()


def test_the_delivery_log_lists_status_attempts_and_response_code(
    programme, receiver, clock, client
):
    endpoint_for(receiver, WebhookEvent.POINTS_POSTED)
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")
    receiver.answer_with(500)
    send_due()
    client.force_login(staff_with("view_webhookdelivery"))

    page = client.get("/admin/api/webhookdelivery/").content.decode()

    assert "點數入帳" in page
    assert "500" in page
    assert "待送出" in page


def test_an_operator_registers_an_endpoint_and_sees_its_secret_once(client, settings):
    client.force_login(staff_with("add_webhookendpoint", "change_webhookendpoint"))

    response = client.post(
        "/admin/api/webhookendpoint/add/",
        {
            "url": "https://shop.example.com/hooks/vip",
            "events": [WebhookEvent.TIER_CHANGED, WebhookEvent.POINTS_POSTED],
            "active": "on",
        },
    )

    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 200
    assert endpoint.secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert endpoint.events == ["points.posted", "tier.changed"]
    assert (
        endpoint.secret
        not in client.get(f"/admin/api/webhookendpoint/{endpoint.pk}/change/").content.decode()
    )


def test_turning_an_endpoint_on_again_in_the_admin_forgets_why_it_was_off(client):
    client.force_login(staff_with("view_webhookendpoint", "change_webhookendpoint"))
    endpoint = WebhookEndpoint.objects.create(
        url="https://shop.example.com/hooks",
        events=[WebhookEvent.TIER_CHANGED],
        secret="s",
        active=False,
        disabled_at=NOW,
        disabled_reason="failed",
        failing_since=NOW - dt.timedelta(days=1),
    )

    client.post(
        f"/admin/api/webhookendpoint/{endpoint.pk}/change/",
        {"url": endpoint.url, "events": ["tier.changed"], "active": "on"},
    )

    endpoint.refresh_from_db()
    assert (endpoint.active, endpoint.failing_since, endpoint.disabled_reason) == (True, None, "")
    assert AuditEntry.objects.filter(action="webhook_endpoint.change").exists()


def test_turning_an_endpoint_off_in_the_admin_records_when_and_by_whom(client, clock):
    operator = staff_with("view_webhookendpoint", "change_webhookendpoint")
    client.force_login(operator)
    endpoint = WebhookEndpoint.objects.create(
        url="https://shop.example.com/hooks", events=[WebhookEvent.TIER_CHANGED], secret="s"
    )

    client.post(
        f"/admin/api/webhookendpoint/{endpoint.pk}/change/",
        {"url": endpoint.url, "events": ["tier.changed"]},
    )

    endpoint.refresh_from_db()
    assert (endpoint.active, endpoint.disabled_at) == (False, NOW)
    assert endpoint.disabled_reason == f"由 {operator.username} 手動停用。"


def test_a_url_typed_without_a_scheme_is_taken_as_https(client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    client.force_login(staff_with("add_webhookendpoint", "change_webhookendpoint"))

    client.post(
        "/admin/api/webhookendpoint/add/",
        {"url": "shop.example.com/hooks/vip", "events": [WebhookEvent.TIER_CHANGED]},
    )

    assert WebhookEndpoint.objects.get().url == "https://shop.example.com/hooks/vip"


def test_a_deliverys_page_is_titled_by_its_event_and_endpoint_in_words(
    programme, receiver, clock, client
):
    endpoint = endpoint_for(receiver, WebhookEvent.POINTS_POSTED).endpoint
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(description="官網購物車")
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")
    client.force_login(staff_with("view_webhookdelivery"))

    page = client.get(f"/admin/api/webhookdelivery/{WebhookDelivery.objects.get().pk}/change/")

    assert "點數入帳 → 官網購物車" in page.content.decode()


# --- where webhooks may go ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://shop.example.com/hooks",
        "https://localhost/hooks",
        "https://127.0.0.1/hooks",
        "https://10.0.0.5/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://db.internal/hooks",
    ],
)
def test_production_refuses_a_url_that_is_not_https_or_points_inside(settings, url):
    settings.WEBHOOKS_ALLOW_PRIVATE = False

    with pytest.raises(ValidationError):
        validate_url(url)


def test_production_accepts_a_public_https_url(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False

    validate_url("https://shop.example.com/hooks/vip")


def test_a_name_that_resolves_inside_is_not_sent_to(
    programme, receiver, clock, settings, monkeypatch
):
    # given: a public-looking name whose DNS now answers with a private address
    endpoint = endpoint_for(receiver, WebhookEvent.POINTS_POSTED).endpoint
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url="https://shop.example.com/hooks")
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    monkeypatch.setattr("socket.getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("10.1.2.3", 443))])
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")

    send_due()

    delivery = WebhookDelivery.objects.get()
    assert "UnsafeDestination" in delivery.last_error
    assert receiver.received == []


def test_a_renewal_and_a_declined_renewal_are_told_to_the_shop(demo, receiver):
    # given: 基礎方案 from 1 June, renewed on 1 July, declined on 1 August
    from subscriptions import services as subscriptions
    from subscriptions.demo import create_demo_plans
    from subscriptions.models import Subscription

    plans = {p.name: p for p in create_demo_plans()}
    endpoint_for(receiver, WebhookEvent.SUBSCRIPTION_RENEWED, WebhookEvent.SUBSCRIPTION_FAILED)
    start = dt.datetime(2026, 6, 1, 2, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        member = MemberFactory(external_id="M-SUB")
        sub = subscriptions.subscribe(member=member, plan=plans["基礎方案"], card_token="tok_ok")

    # when
    with time_machine.travel(start + dt.timedelta(days=30), tick=False):
        subscriptions.run_jobs()
        send_due()
    Subscription.objects.filter(pk=sub.pk).update(card_token="tok_decline")
    with time_machine.travel(start + dt.timedelta(days=61), tick=False):
        subscriptions.run_jobs()
        send_due()

    # then
    events = [r.event for r in receiver.received]
    assert [e["type"] for e in events] == ["subscription.renewed", "subscription.failed"]
    assert events[0]["data"]["period_start"].startswith("2026-07-01")
    assert events[1]["data"]["kind"] == "payment_failed"
    assert events[1]["data"]["member"]["external_id"] == "M-SUB"


def test_points_expiring_within_30_days_are_told_to_the_shop_once(programme, receiver, clock):
    # given: 70 points that expire in about 20 days
    from points.models import Lot
    from points.services import send_expiry_reminders

    endpoint_for(receiver, WebhookEvent.POINTS_EXPIRING)
    member = MemberFactory(external_id="M-EXP")
    earn(member_id=member.pk, points=70, source="action", source_ref="x", key="k-1")
    Lot.objects.update(expires_at=NOW + dt.timedelta(days=20))

    # when: the daily reminder runs twice
    send_expiry_reminders()
    send_expiry_reminders()
    send_due()

    # then
    [sent] = receiver.received
    assert sent.event["type"] == "points.expiring"
    assert sent.event["data"]["points"] == 70
    assert sent.event["data"]["member"]["external_id"] == "M-EXP"


def test_tagging_an_enterprise_customer_tells_the_shop_of_the_group_change(
    programme, receiver, clock
):
    # given: a 全館 VIP 銀卡 member
    endpoint_for(receiver, WebhookEvent.GROUP_CHANGED)
    member = silver_member(programme)
    send_due()
    receiver.received.clear()

    # when: tagged 企業客戶
    services.add_tag(member_id=member.pk, tag=programme.enterprise_tag, actor=UserFactory())
    send_due()

    # then
    [sent] = receiver.received
    data = sent.event["data"]
    assert sent.event["type"] == "group.changed"
    assert (data["from"]["group"], data["to"]["group"]) == ("全館 VIP", "企業 VIP")
    assert (data["from"]["tier"], data["to"]["tier"]) == ("銀卡", "銅牌企業")


def test_the_beat_job_sends_what_the_broker_never_took(programme, receiver, clock):
    # given: a posting owed while no worker ran (its follow-up never dispatched)
    from api.tasks import send_webhooks

    endpoint_for(receiver, WebhookEvent.POINTS_POSTED)
    earn(member_id=MemberFactory().pk, points=50, source="action", source_ref="x", key="k-1")
    assert receiver.received == []

    # when: the minute's beat job runs
    send_webhooks.apply()

    # then
    assert len(receiver.received) == 1
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.SUCCEEDED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_four_senders_at_once_send_each_event_once(receiver):
    # given: 40 events owed to one endpoint
    import threading

    from django.db import connection

    endpoint_for(receiver, WebhookEvent.POINTS_POSTED)
    members = MemberFactory.create_batch(40)
    for m in members:
        earn(member_id=m.pk, points=10, source="action", source_ref="x", key=f"k-{m.pk}")

    # when: four workers send at the same time, each on its own connection
    def worker():
        try:
            send_due()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # then: every event once
    assert sorted(receiver.event_ids()) == sorted(
        WebhookDelivery.objects.values_list("event_id", flat=True)
    )
    assert len(receiver.received) == 40
