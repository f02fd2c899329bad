"""The recompute task through a real Celery worker on the machine's Redis broker."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from config.celery import app
from membership.models import Member, Order
from membership.tasks import recompute_all_members
from tests.conftest import REDIS_URL
from tests.factories import MemberFactory, build_design_programme

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


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
