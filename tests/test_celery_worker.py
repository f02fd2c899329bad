"""The recompute task through a real Celery worker on the machine's Redis broker."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from config.celery import app
from imports import services as imports
from imports.models import ImportJob
from imports.tasks import check_import, write_import  # imported before the worker starts
from jobs.tasks import run_job_chunk  # noqa: F401 (imported before the worker starts)
from membership.models import Member, Order
from membership.tasks import recompute_all_members
from subscriptions import services as subs
from subscriptions.demo import create_demo_plans
from subscriptions.models import ChargeAttempt, Subscription
from subscriptions.tasks import run_subscription_jobs  # imported before the worker starts
from tests.conftest import REDIS_URL
from tests.factories import MemberFactory, build_design_programme

# The worker runs in a thread with its own connection: SQLite's shared in-memory test
# database locks whole tables between it and the test, so these run on PostgreSQL.
pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _use_broker(**conf) -> None:
    # Connection and producer pools are cached with the broker they were made for:
    # drop them, or messages keep going to the old broker. (Not app.close(): it also
    # takes the app off Celery's list of live apps, and a tasks module imported later
    # would then register its tasks on no app.)
    app._pool = None
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


def test_a_worker_on_redis_renews_a_due_subscription(redis_worker, demo):
    # given: a subscription whose period has just ended
    plan = {p.name: p for p in create_demo_plans()}["基礎方案"]
    sub = subs.subscribe(member=MemberFactory(), plan=plan, card_token="tok_ok")
    Subscription.objects.filter(pk=sub.pk).update(period_end=timezone.now())

    # when
    run_subscription_jobs.delay()

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
    deadline = time.monotonic() + 120
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


# --- faults with real workers: the broker away, a worker killed, the connection dropped ---

CLOSED_BROKER = "redis://127.0.0.1:6390/0"  # nothing listens there: the broker is "down"


def _members_file(count: int) -> bytes:
    rows = [f"F{i},會員{i},09{i:08d},,,{i % 40_000}" for i in range(count)]
    return ("external_id,name,phone,email,birthday,opening_spend\n" + "\n".join(rows)).encode()


def _wait(condition, seconds: float = 60, every: float = 0.05):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(every)
    raise AssertionError(f"not within {seconds} s: {condition.__doc__ or condition}")


@pytest.fixture
def operator_client(client):
    from tests.factories import staff_with

    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(staff_with("import_members", "view_member"))
    return client


def test_an_upload_and_a_confirm_with_the_broker_down_succeed_and_run_when_it_is_back(
    operator_client, settings
):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from imports.tasks import sweep_import_jobs

    build_design_programme()
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager", "result_backend")}
    try:
        # given: the broker is down when the operator uploads
        _use_broker(broker_url=CLOSED_BROKER, task_always_eager=False, result_backend=None)
        data = b"external_id,name\nB1,\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e\n"
        uploaded = operator_client.post(
            reverse("admin:imports_upload", args=["members"]),
            {"file": SimpleUploadedFile("m.csv", data, "text/csv"), "encoding": ""},
        )
        job = ImportJob.objects.get()
        queued = job.status

        # when: the broker is back and beat's sweeper runs on a worker
        _use_broker(broker_url=REDIS_URL)
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            sweep_import_jobs.delay()
            checked = wait_for(job.pk, ImportJob.Status.CHECKED)

        # and: the confirm is made with the broker down again, then the sweeper runs
        _use_broker(broker_url=CLOSED_BROKER)
        confirmed = operator_client.post(
            reverse("admin:imports_confirm", args=[job.pk]), {"mode": "all"}
        )
        writing = ImportJob.objects.get(pk=job.pk).status
        _use_broker(broker_url=REDIS_URL)
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            sweep_import_jobs.delay()
            done = wait_for(job.pk, ImportJob.Status.DONE)
    finally:
        _use_broker(**saved)

    # then: no error after either commit, and the work ran once the broker was back
    assert (uploaded.status_code, confirmed.status_code) == (302, 302)
    assert (queued, checked.status, writing, done.status) == (
        "queued",
        "checked",
        "writing",
        "done",
    )
    assert Member.objects.get().name == "王小明"


class WorkerProcess:
    """``celery -A config worker`` as a separate process on the test database, to kill."""

    def __init__(self, log_path, lease_seconds: int):
        import os
        import subprocess
        import sys

        from django.conf import settings
        from django.db import connection

        db = connection.settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CELERY_BROKER_URL": REDIS_URL,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "IMPORT_LEASE_SECONDS": str(lease_seconds),
            # libpq names the worker's connections, so a test drops only those.
            "PGAPPNAME": WORKER_APPLICATION_NAME,
        }
        self.log_path = log_path
        self.log = open(log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo"]
            + ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        self.started_at = self.log_path.stat().st_size

    def wait_ready(self) -> None:
        def ready():
            """the worker says it is ready"""
            return b"ready." in self.log_path.read_bytes()[self.started_at :]

        _wait(ready, seconds=60, every=0.2)

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no clean-up, no ack, the lease is left to run out
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except Exception:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def workers(tmp_path, settings):
    """Start worker processes on Redis; every one is stopped at the end, by its own id."""
    settings.IMPORT_LEASE_SECONDS = 3
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager", "result_backend")}
    _use_broker(broker_url=REDIS_URL, task_always_eager=False, result_backend=None)
    app.control.purge()
    started = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(tmp_path / "worker.log", lease_seconds=3)
        started.append(worker)
        worker.wait_ready()
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
        app.control.purge()
        _use_broker(**saved)


def _job_for(count: int) -> ImportJob:
    import io

    return imports.create_job(
        kind="members", file=io.BytesIO(_members_file(count)), filename="big.csv", actor=None
    )


def _mid_check(job_id: int):
    def checking():
        """the check is under way (rows checked, not finished)"""
        job = ImportJob.objects.get(pk=job_id)
        return job.status == ImportJob.Status.CHECKING and job.rows_done >= 5000

    return checking


def _mid_write(job_id: int):
    def writing():
        """the write is claimed by a worker"""
        return (
            ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.WRITING)
            .exclude(claimed_by="")
            .exists()
        )

    return writing


def _checked(count: int) -> ImportJob:
    job = _job_for(count)
    imports.check(job.pk)
    imports.confirm(job.pk, actor=None, valid_only=False)
    return ImportJob.objects.get(pk=job.pk)


def test_a_worker_killed_mid_check_leaves_a_lease_the_sweeper_claims_again(workers):
    from imports.models import StagedMember
    from imports.tasks import dispatch, sweep_import_jobs

    # given: a worker checking 60,000 rows
    job = _job_for(60_000)
    first = workers()
    dispatch(job.pk)
    _wait(_mid_check(job.pk))

    # when: the worker is killed, another starts, and beat's sweeper runs after the lease
    first.kill()
    workers()
    time.sleep(3.5)
    sweep_import_jobs.delay()
    checked = wait_for(job.pk, ImportJob.Status.CHECKED)

    # then: the check ran again from the start and finished once
    assert (checked.status, checked.attempts, checked.total_rows) == ("checked", 2, 60_000)
    assert StagedMember.objects.filter(job=job).count() == 60_000


def test_a_worker_killed_mid_write_is_rolled_back_and_the_write_happens_exactly_once(workers):
    from imports.tasks import dispatch, sweep_import_jobs
    from membership.models import TierHistory

    # given: 60,000 checked members being written by a worker
    build_design_programme()
    job = _checked(60_000)
    first = workers()
    dispatch(job.pk)
    _wait(_mid_write(job.pk))

    # when: the worker is killed mid-write, another starts, and the sweeper runs
    first.kill()
    workers()
    time.sleep(3.5)
    sweep_import_jobs.delay()
    done = wait_for(job.pk, ImportJob.Status.DONE)

    # then: every member written once, placed once, the job done on its second attempt
    assert (done.status, done.attempts, done.created) == ("done", 2, 60_000)
    assert Member.objects.count() == 60_000
    assert TierHistory.objects.count() == 60_000
    assert Order.objects.filter(external_id__startswith="opening:").count() == 59_998


WORKER_APPLICATION_NAME = "vip-test-worker"


def _drop_worker_connections() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [WORKER_APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("phase", ["check", "write"])
def test_a_connection_dropped_mid_job_is_recorded_on_a_new_one_and_tried_again(workers, phase):
    from imports.tasks import dispatch, sweep_import_jobs

    # given: a worker checking (or writing) 60,000 rows
    build_design_programme()
    job = _job_for(60_000) if phase == "check" else _checked(60_000)
    workers()
    dispatch(job.pk)
    _wait(_mid_check(job.pk) if phase == "check" else _mid_write(job.pk))

    # when: the database drops the worker's connection
    dropped = _drop_worker_connections()

    def released():
        """the job is back in its queue with the reason"""
        job_now = ImportJob.objects.get(pk=job.pk)
        return job_now if not job_now.claimed_by else None

    waiting = _wait(released, seconds=60)
    sweep_import_jobs.delay()
    final = wait_for(job.pk, "checked" if phase == "check" else "done")

    # then: the failure was recorded (not stuck), and the second attempt finished
    assert dropped >= 1
    assert waiting.status == ("queued" if phase == "check" else "writing")
    # (the worker writes in the site's language: "Attempt 1 of 3 stopped: the database
    # connection was lost")
    assert waiting.message.startswith("第 1 次嘗試（共 3 次）中斷：資料庫連線中斷")
    assert (final.status, final.attempts) == (("checked" if phase == "check" else "done"), 2)
    assert Member.objects.count() == (0 if phase == "check" else 60_000)


def test_recompute_tiers_with_dispatch_runs_the_job_through_a_worker(redis_worker):
    from django.core.management import call_command

    from jobs.models import Job

    # given: twelve members, one with NT$35,000 this year
    build_design_programme()
    members = [MemberFactory() for _ in range(12)]
    Order.objects.create(
        member=members[0], external_id="D1", amount=35_000, placed_at=timezone.now()
    )

    # when: the command sends the job's chunks (five members each) to the worker
    call_command("recompute_tiers", "--dispatch", "--chunk", "5")

    # then: the worker ran every chunk and the job finished
    def finished():
        """the job is done"""
        return Job.objects.filter(kind="recompute", status="done").first()

    job = _wait(finished, seconds=60, every=0.2)
    assert (job.chunks_done, job.chunks_total, job.dispatched) == (5, 5, True)
    assert Member.objects.get(pk=members[0].pk).tier.name == "金卡"
    assert not Member.objects.filter(tier__isnull=True).exists()
