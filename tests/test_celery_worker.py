"""The recompute task through a real Celery worker on the machine's Redis broker."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from config.celery import app
from imports import services as imports
from imports.models import ImportJob
from imports.tasks import check_import, write_import  # imported before the worker starts
from membership.management.commands.seed_demo import Command as Seed
from membership.models import Member, Order
from membership.tasks import recompute_all_members
from subscriptions import services as subs
from subscriptions.demo import create_demo_plans
from subscriptions.models import ChargeAttempt, Subscription
from subscriptions.tasks import renew_subscription  # imported before the worker starts
from tests.conftest import REDIS_URL
from tests.factories import MemberFactory, build_design_programme

# The worker runs in a thread with its own connection: SQLite's shared in-memory test
# database locks whole tables between it and the test, so these run on PostgreSQL.
pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _use_broker(**conf) -> None:
    # Connection and producer pools are cached with the broker they were made for:
    # drop them, or messages keep going to the old broker.
    app.close()
    app.amqp._producer_pool = None
    app.conf.update(conf)


@pytest.fixture
def redis_worker():
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager", "result_backend")}
    _use_broker(broker_url=REDIS_URL, task_always_eager=False, result_backend=None)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield
    finally:
        _use_broker(**saved)


def test_a_worker_on_redis_runs_the_recompute_and_places_every_member(redis_worker):
    # given: five members nobody has placed yet, one with NT$35,000 this year
    build_design_programme()
    members = [MemberFactory() for _ in range(5)]
    Order.objects.create(
        member=members[0], external_id="W1", amount=35_000, placed_at=timezone.now()
    )

    # when: the task goes through Redis to the worker
    recompute_all_members.delay()

    # then
    deadline = time.monotonic() + 30
    while Member.objects.filter(tier__isnull=True).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    tiers = {m.pk: m.tier.name for m in Member.objects.select_related("tier")}
    assert tiers[members[0].pk] == "金卡"
    assert sorted(tiers.values()) == ["一般會員"] * 4 + ["金卡"]


def test_a_worker_on_redis_renews_a_due_subscription(redis_worker):
    # given: a subscription whose period has just ended
    Seed()._programme()
    plan = {p.name: p for p in create_demo_plans()}["基礎方案"]
    sub = subs.subscribe(member=MemberFactory(), plan=plan, card_token="tok_ok")
    Subscription.objects.filter(pk=sub.pk).update(period_end=timezone.now())

    # when
    renew_subscription.delay(sub.pk)

    # then
    # (until the period has moved on: the charge attempt is written before the gateway is
    # asked, and the state moves only after its answer)
    deadline = time.monotonic() + 30
    while (
        not Subscription.objects.filter(pk=sub.pk, period_end__gt=timezone.now()).exists()
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert ChargeAttempt.objects.filter(subscription=sub).count() == 2
    sub.refresh_from_db()
    assert sub.state == Subscription.State.ACTIVE
    assert sub.period_end > timezone.now()


def wait_for(job_id: int, status: str) -> ImportJob:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = ImportJob.objects.get(pk=job_id)
        if job.status in {status, ImportJob.Status.FAILED}:
            return job
        time.sleep(0.2)
    return job


def test_a_worker_on_redis_checks_and_writes_an_uploaded_file(redis_worker):
    # given: an upload of 12,000 members, one of them bad
    import io

    build_design_programme()
    rows = [f"W{i},會員{i},09{i:08d}" for i in range(12_000)]
    rows[7] = "W7,會員7,123"
    data = ("external_id,name,phone\n" + "\n".join(rows)).encode()
    job = imports.create_job(kind="members", file=io.BytesIO(data), filename="m.csv", actor=None)

    # when: the check and, after the operator's go-ahead, the write go through the worker
    check_import.delay(job.pk)
    checked = wait_for(job.pk, ImportJob.Status.CHECKED)
    imports.confirm(job.pk, actor=None, valid_only=True)
    write_import.delay(job.pk)
    done = wait_for(job.pk, ImportJob.Status.DONE)

    # then
    assert (checked.total_rows, checked.error_rows) == (12_000, 1)
    assert (done.created, done.skipped) == (11_999, 1)
    assert Member.objects.filter(tier__name="一般會員").count() == 11_999
