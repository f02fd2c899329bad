"""Follow-ups owed after a commit go through the outbox: a broker that is away loses
nothing, reports nothing, and a message sent twice runs once."""

import datetime as dt
import sys
import threading
import time

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.contrib import messages
from django.core import mail
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from config.celery import app
from membership import outbox, services
from membership.models import Cause, Member, Order, OutboxMessage, TierHistory
from membership.tasks import sweep_outbox  # imported before the worker starts
from tests.conftest import REDIS_URL
from tests.factories import MemberFactory, OrderFactory, UserFactory, build_design_programme
from tests.test_celery_worker import _use_broker

RECOMPUTE = "membership.tasks.recompute_all_members"
TIER_EMAILS = "membership.tasks.send_tier_notifications"
# Nothing listens here: the broker is away. (Never stop the shared Redis server.)
BROKER_AWAY = "redis://127.0.0.1:6390/0"


def placed_member(**kwargs) -> Member:
    member = MemberFactory(**kwargs)
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    member.refresh_from_db()
    return member


def pending(task_name: str) -> int:
    return OutboxMessage.objects.filter(task_name=task_name, done_at__isnull=True).count()


# --- The outbox on its own (eager Celery, any database) ---------------------------------


def a_change_that_fails() -> None:
    with transaction.atomic():
        outbox.enqueue(RECOMPUTE)
        raise RuntimeError("the change failed")


@pytest.mark.django_db
def test_a_follow_up_enqueued_in_a_rolled_back_transaction_leaves_no_row():
    # given / when: the change that owed the follow-up is rolled back
    with pytest.raises(RuntimeError):
        a_change_that_fails()

    # then
    assert not OutboxMessage.objects.exists()


def test_a_follow_up_runs_once_the_change_commits(programme, django_capture_on_commit_callbacks):
    # given: a member nobody has placed yet
    member = MemberFactory()

    # when: a configuration change owes a recompute (Celery eager: no broker)
    with django_capture_on_commit_callbacks(execute=True):
        outbox.enqueue(RECOMPUTE)

    # then
    member.refresh_from_db()
    assert member.tier.name == "一般會員"
    assert OutboxMessage.objects.get(task_name=RECOMPUTE).done_at is not None


def test_the_same_follow_up_owed_twice_before_it_runs_is_one_row(db):
    # given / when: two changes in one transaction each owe a recompute
    with transaction.atomic():
        outbox.enqueue(RECOMPUTE)
        outbox.enqueue(RECOMPUTE)

    # then
    assert OutboxMessage.objects.filter(task_name=RECOMPUTE).count() == 1


def test_a_change_joining_a_follow_up_already_sent_sends_nothing_more_after_its_commit(
    db, django_capture_on_commit_callbacks
):
    # given: a recompute on its way to a worker (sent, not started)
    sent = OutboxMessage.objects.create(
        task_name=RECOMPUTE, created_at=timezone.now(), dispatched_at=timezone.now()
    )

    # when: a change owes it again
    with django_capture_on_commit_callbacks() as after_commit:
        joined = outbox.enqueue(RECOMPUTE)

    # then: the message on its way covers this change too
    assert joined.pk == sent.pk
    assert after_commit == []


def test_a_change_joining_a_follow_up_not_yet_sent_sends_it_after_its_commit(
    db, django_capture_on_commit_callbacks
):
    unsent = OutboxMessage.objects.create(task_name=RECOMPUTE, created_at=timezone.now())

    with django_capture_on_commit_callbacks() as after_commit:
        joined = outbox.enqueue(RECOMPUTE)

    assert joined.pk == unsent.pk
    assert len(after_commit) == 1


def test_a_follow_up_already_started_is_not_joined_by_a_later_change(db):
    # given: a recompute a worker has started (it may not see the next change)
    started = OutboxMessage.objects.create(
        task_name=RECOMPUTE, created_at=timezone.now(), started_at=timezone.now()
    )

    # when
    later = outbox.enqueue(RECOMPUTE)

    # then
    assert later.pk != started.pk


def test_a_second_copy_of_a_message_does_not_run_the_follow_up_again(
    programme, django_capture_on_commit_callbacks
):
    # given: a follow-up that ran
    with django_capture_on_commit_callbacks(execute=True):
        message = outbox.enqueue(RECOMPUTE)

    # when: the broker delivers a second copy of its message
    ran_again = outbox.run(message_id=message.pk)

    # then
    message.refresh_from_db()
    assert ran_again is False
    assert message.attempts == 1


def test_a_follow_up_that_fails_keeps_its_error_and_is_not_done(db):
    # given / when: a follow-up naming a task no worker knows
    with transaction.atomic():
        message = outbox.enqueue("membership.tasks.no_such_task")
    outbox.dispatch(message_id=message.pk)

    # then
    message.refresh_from_db()
    assert message.done_at is None
    assert message.started_at is None
    assert "no_such_task" in message.last_error


@pytest.fixture
def api_tasks_not_loaded():
    """As in a web process that has run a follow-up of membership's but not yet imported
    api.tasks (it imports no tasks module of its own accord)."""
    import api
    import api.tasks

    module = sys.modules.pop("api.tasks")
    registered = {name: app.tasks.pop(name) for name in list(app.tasks) if name.startswith("api.")}
    del api.tasks
    yield
    sys.modules["api.tasks"] = api.tasks = module
    app.tasks.update(registered)


def test_a_follow_up_of_an_app_whose_tasks_are_not_loaded_yet_runs_at_once(
    db, api_tasks_not_loaded
):
    # given: a follow-up of the API app's, owed by a committed change
    with transaction.atomic():
        message = outbox.enqueue("api.tasks.purge_idempotency_keys")

    # when: the web process sends it after the commit
    outbox.dispatch(message_id=message.pk)

    # then: it ran then, not when the sweeper came by
    message.refresh_from_db()
    assert message.last_error == ""
    assert message.done_at is not None


def test_a_follow_up_whose_worker_died_is_run_again_by_the_sweeper(programme):
    # given: a recompute started two hours ago by a worker that never finished it
    member = MemberFactory()
    long_ago = timezone.now() - dt.timedelta(hours=2)
    message = OutboxMessage.objects.create(
        task_name=RECOMPUTE, created_at=long_ago, dispatched_at=long_ago, started_at=long_ago
    )

    # when
    outbox.sweep()

    # then
    message.refresh_from_db()
    member.refresh_from_db()
    assert message.done_at is not None
    assert member.tier.name == "一般會員"


def test_the_sweeper_forgets_follow_ups_done_a_week_ago(db):
    # given
    now = timezone.now()
    old = OutboxMessage.objects.create(
        task_name=RECOMPUTE,
        created_at=now - dt.timedelta(days=8),
        done_at=now - dt.timedelta(days=8),
    )
    recent = OutboxMessage.objects.create(
        task_name=RECOMPUTE,
        created_at=now - dt.timedelta(days=1),
        done_at=now - dt.timedelta(days=1),
    )

    # when
    outbox.sweep()

    # then
    assert not OutboxMessage.objects.filter(pk=old.pk).exists()
    assert OutboxMessage.objects.filter(pk=recent.pk).exists()


# --- Sending through a real broker (Redis, PostgreSQL) --------------------------------


class Broker:
    """The app's broker, taken away (a port nobody listens on) and brought back; a worker
    on it runs the beat job ``sweep_outbox``."""

    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(REDIS_URL)

    def here(self) -> None:
        _use_broker(broker_url=REDIS_URL, task_always_eager=False, result_backend=None)

    def away(self) -> None:
        _use_broker(broker_url=BROKER_AWAY, task_always_eager=False, result_backend=None)

    def waiting(self) -> int:
        """Messages in the queue, not yet taken by a worker."""
        return self.redis.llen("celery")

    def back_and_sweep(self, done) -> None:
        self.here()
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            sweep_outbox.delay()
            deadline = time.monotonic() + 30
            while not done() and time.monotonic() < deadline:
                time.sleep(0.2)


@pytest.fixture
def broker():
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager", "result_backend")}
    broker = Broker()
    broker.redis.delete("celery")
    try:
        yield broker
    finally:
        _use_broker(**saved)
        broker.redis.delete("celery")


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_send_a_follow_up_the_broker_did_not_take_once(broker):
    # given: a follow-up whose send failed (the broker was away at the commit)
    broker.here()
    OutboxMessage.objects.create(task_name=RECOMPUTE, created_at=timezone.now())

    # when: two sweeps run, one after the other
    first, second = outbox.sweep(), outbox.sweep()

    # then
    assert (first, second) == (1, 0)
    assert broker.waiting() == 1


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweepers_at_once_send_each_follow_up_once(broker):
    # given: 300 follow-ups the broker did not take
    broker.here()
    now = timezone.now()
    OutboxMessage.objects.bulk_create(
        OutboxMessage(task_name=RECOMPUTE, created_at=now) for _ in range(300)
    )
    start = threading.Barrier(2)
    sent = []

    def sweeper():
        try:
            start.wait()
            sent.append(outbox.sweep())
        finally:
            connection.close()

    # when: two sweepers run at the same moment, each on its own connection
    threads = [threading.Thread(target=sweeper) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # then
    assert sum(sent) == 300
    assert broker.waiting() == 300


# --- The broker away, then back (a real worker on Redis, PostgreSQL) -----------------------


def all_done() -> bool:
    return not OutboxMessage.objects.filter(done_at__isnull=True).exists()


def levels(response) -> set[int]:
    return {m.level for m in response.context["messages"]}


def logged_in_admin(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_with_the_broker_away_an_order_recorded_in_the_admin_is_saved_and_e_mailed_later(
    client, broker, mailoutbox
):
    # given: a 一般會員 member, and the broker away
    build_design_programme()
    member = placed_member()
    mail.outbox.clear()
    broker.away()

    # when: the operator records a NT$12,000 order in the admin
    response = logged_in_admin(client).post(
        reverse("admin:membership_order_add"),
        {
            "member": member.pk,
            "source": "shop",
            "external_id": "B-1",
            "channel": "",
            "amount": 12_000,
            "placed_at_0": timezone.localdate().isoformat(),
            "placed_at_1": "10:00:00",
            "refunds-TOTAL_FORMS": 0,
            "refunds-INITIAL_FORMS": 0,
        },
        follow=True,
    )

    # then: success, the order saved, the member upgraded, the e-mail owed
    assert response.status_code == 200
    assert levels(response) == {messages.SUCCESS}
    assert Order.objects.filter(external_id="B-1", amount=12_000).exists()
    member.refresh_from_db()
    assert member.tier.name == "銀卡"
    assert pending(TIER_EMAILS) == 1
    assert mailoutbox == []

    # when: the broker is back and beat's sweeper runs
    broker.back_and_sweep(lambda: all_done() and len(mail.outbox) >= 1)

    # then: one e-mail, to the member, and nothing left to send
    assert [m.to for m in mailoutbox] == [[member.email]]
    assert not TierHistory.objects.filter(notified_at__isnull=True).exists()
    assert outbox.sweep() == 0


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_with_the_broker_away_a_tier_adjustment_is_saved_and_e_mailed_later(
    client, broker, mailoutbox
):
    # given
    programme = build_design_programme()
    member = placed_member()
    mail.outbox.clear()
    broker.away()

    # when: the operator sets 金卡 by hand
    response = logged_in_admin(client).post(
        reverse("admin:membership_member_adjust_tier", args=[member.pk]),
        {"tier": programme.tiers["金卡"].pk, "reason": "VIP 客訴補償"},
        follow=True,
    )

    # then
    assert response.status_code == 200
    assert levels(response) == {messages.SUCCESS}
    member.refresh_from_db()
    assert member.tier.name == "金卡"
    assert pending(TIER_EMAILS) == 1

    # when
    broker.back_and_sweep(lambda: all_done() and len(mail.outbox) >= 1)

    # then
    assert [m.to for m in mailoutbox] == [[member.email]]
    assert outbox.sweep() == 0


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_with_the_broker_away_a_version_published_now_is_live_and_members_are_evaluated_later(
    client, broker, mailoutbox
):
    # given: a member with NT$9,000, below 銀卡's NT$10,000
    from membership.services import versions

    programme = build_design_programme()
    member = placed_member()
    OrderFactory(member=member, amount=9_000)
    silver = programme.tiers["銀卡"]
    draft = versions.create_draft(actor=None)
    draft.thresholds.filter(tier=silver).update(upgrade_threshold=8_000, retention_threshold=6_000)
    mail.outbox.clear()
    broker.away()

    # when: the operator publishes the draft lowering 銀卡 to NT$8,000, now
    response = logged_in_admin(client).post(
        reverse("admin:programmeversion_publish", args=[draft.pk]),
        {"effective_from": "2030-01-01 00:00", "now": "on", "confirm_now": "on"},
        follow=True,
    )

    # then: the version is live; the evaluation waits for the broker
    assert response.status_code == 200
    assert messages.ERROR not in levels(response)
    silver.refresh_from_db()
    assert silver.upgrade_threshold == 8_000
    member.refresh_from_db()
    assert member.tier.name == "一般會員"
    assert pending("membership.tasks.evaluate_after_version_switch") == 1

    # when
    broker.back_and_sweep(lambda: all_done() and len(mail.outbox) >= 1)

    # then: the member is 銀卡 and told so once
    member.refresh_from_db()
    assert member.tier.name == "銀卡"
    assert [m.to for m in mailoutbox] == [[member.email]]
    assert outbox.sweep() == 0


@pytest.mark.django_db(transaction=True)
def test_with_the_mail_server_away_a_tier_adjustment_still_answers_success(client, settings):
    # given: Celery eager (no broker), and nothing listening where the e-mail goes
    programme = build_design_programme()
    member = placed_member()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 6390

    # when
    response = logged_in_admin(client).post(
        reverse("admin:membership_member_adjust_tier", args=[member.pk]),
        {"tier": programme.tiers["金卡"].pk, "reason": "VIP 客訴補償"},
        follow=True,
    )

    # then: saved and said so; the e-mail is owed, with why it is not sent yet
    assert levels(response) == {messages.SUCCESS}
    member.refresh_from_db()
    assert member.tier.name == "金卡"
    owed = OutboxMessage.objects.get(task_name=TIER_EMAILS, done_at__isnull=True)
    assert "Connection refused" in owed.last_error
