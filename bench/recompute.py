#!/usr/bin/env python
"""Benchmark: the tier recompute as a batch job against a bare SQL aggregate of the orders.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/recompute.py --scale 200000 [--workers 2]

Builds a synthetic merchant in a scratch database beside the one in DATABASE_URL
(``<name>_bench_recompute``, dropped and re-created): N members with ten orders each
over two years, 3% of them tagged 企業客戶, 1% 員工, 1% KOL, and the demo programme.
Times the cold recompute (every member's group and tier to be found, history rows
and gifts written; the members' summaries dropped, to be written by the summaries job,
timed apart on its own line), the steady one (the same again: nothing changes) and, in the same
run, a bare ``SUM ... GROUP BY member_id`` over the same orders.

Without ``--workers`` the job runs in this process (``manage.py recompute_tiers``);
with ``--workers W`` the bench starts W Celery worker processes on the Redis of
REDIS_URL, sends the job's chunks to them (``recompute_tiers --dispatch``) and times it
until the job record says done. Last line:

    recompute: members=N workers=W seconds=S steady_seconds=T aggregate_seconds=A
    ratio=S/A steady_ratio=T/A floor_ratio=F/A

``F``, the write floor, is the cold run's writes done again bare into empty twins of
their tables, over as many connections as there were workers (``write_floor``).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic import build_merchant, scratch_database, setup_django, time_aggregate, twin

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench_recompute_jobs"  # the bench's workers take only the job's chunks


def start_workers(count: int, database_url: str, broker: str) -> list[subprocess.Popen]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "JOBS_QUEUE": QUEUE,
        "LOG_LEVEL": "WARNING",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-secret-" + "x" * 40,
    }
    logs = [
        Path(tempfile.mkstemp(prefix=f"bench-worker{k}-", suffix=".log")[1]) for k in range(count)
    ]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo"]
            + ["-Q", QUEUE, "-n", f"bench{k}@%h", "--without-gossip", "--without-mingle"]
            + ["--without-heartbeat", "-l", "info"],
            cwd=ROOT,
            env=env,
            stdout=logs[k].open("wb"),
            stderr=subprocess.STDOUT,
        )
        for k in range(count)
    ]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(b"ready." in log.read_bytes() for log in logs):
            return workers
        time.sleep(0.2)
    stop_workers(workers)
    sys.exit(f"the bench's workers did not start: see {logs}")


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(30)


def timed_job(dispatched: bool, kind: str = "recompute") -> tuple[float, dict]:
    from jobs import services as jobs
    from jobs.models import Job
    from jobs.tasks import dispatch

    start = time.perf_counter()
    if not dispatched:
        job = jobs.run(kind=kind)
        return time.perf_counter() - start, job.result
    job = jobs.start(kind=kind, dispatched=True)
    dispatch(job.pk)
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status != Job.Status.RUNNING:
            break
        time.sleep(0.05)
    if job.status != Job.Status.DONE:
        sys.exit(f"job failed: {job.error}")
    return time.perf_counter() - start, job.result


# What the cold run writes: its members' standing, and a history row and gifts per move.
MEMBER_COLUMNS = (
    "group_id, earned_tier_id, tier_id, next_review_on, tier_since, tier_earned_by_order_id"
)
LOGS = ("membership_tierhistory", "membership_giftissue")


def prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in MEMBER_COLUMNS.split(","))


def prepare_floor() -> None:
    """Before the cold run: twins of the tables it writes, the members as they stand."""
    from django.db import connection

    with connection.cursor() as cur:
        twin(cur, "membership_member", copy_rows=True)
        for table in LOGS:
            twin(cur, table, copy_rows=False)


def write_floor(workers: int) -> float:
    """The cold run's writes again, bare, into the twins: each member's new standing
    copied over by key, the history and gift rows copied, nothing computed; split in id
    ranges over as many connections as the job had workers, each in one transaction.
    No run that keeps these rows in these tables writes them faster, so
    ``floor_seconds / A`` bounds the cold ratio from below."""
    import threading

    from django.db import connection, connections, transaction

    with connection.cursor() as cur:
        cur.execute("SELECT min(id), max(id) FROM membership_member")
        low, high = cur.fetchone()
    step = (high - low) // workers + 1
    ranges = [(low + k * step, low + (k + 1) * step - 1) for k in range(workers)]

    def write(first: int, last: int) -> None:
        try:
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute(
                    f"UPDATE floor_membership_member f SET ({MEMBER_COLUMNS}) = "
                    f"({prefixed('m')}) FROM membership_member m "
                    "WHERE m.id = f.id AND f.id BETWEEN %s AND %s "
                    f"AND ({prefixed('f')}) IS DISTINCT FROM ({prefixed('m')})",
                    [first, last],
                )
                for table in LOGS:
                    cur.execute(
                        f"INSERT INTO floor_{table} SELECT * FROM {table} "
                        "WHERE member_id BETWEEN %s AND %s",
                        [first, last],
                    )
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=r) for r in ranges]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    with connections["default"].cursor() as cur:
        for table in ("membership_member", *LOGS):
            cur.execute(f"DROP TABLE floor_{table}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=200_000, help="members")
    parser.add_argument("--workers", type=int, default=0, help="Celery worker processes")
    args = parser.parse_args()
    n = args.scale

    database_url = scratch_database("_bench_recompute")
    broker = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ["JOBS_QUEUE"] = QUEUE
    setup_django(broker=broker if args.workers else "memory://")

    build_merchant(n)
    workers = start_workers(args.workers, database_url, broker) if args.workers else []
    try:
        prepare_floor()
        time_aggregate()  # both timings below run with the orders in the cache
        seconds, result = timed_job(bool(workers))
        aggregate_seconds = min(time_aggregate() for _ in range(3))
        print(f"cold: {result}", flush=True)
        floor_seconds = write_floor(args.workers or 1)
        print(f"write floor: {floor_seconds:.2f}s", flush=True)
        # The summaries the cold run dropped (it moved everyone), written by their own job
        # afterwards; the tier pages read afresh meanwhile. Timed apart, not in seconds=.
        summaries_seconds, written = timed_job(bool(workers), kind="summaries")
        print(f"summaries: seconds={summaries_seconds:.2f} {written}", flush=True)
        # The daily case: everyone already placed, nothing to change.
        steady_seconds, again = timed_job(bool(workers))
        print(f"steady: {again}", flush=True)
    finally:
        stop_workers(workers)
        if workers:
            # The tier e-mails the job queued on the bench's broker: nobody here sends them.
            from config.celery import app

            app.control.purge()
    print(
        f"recompute: members={n} workers={args.workers or 1} seconds={seconds:.2f} "
        f"steady_seconds={steady_seconds:.2f} aggregate_seconds={aggregate_seconds:.2f} "
        f"ratio={seconds / aggregate_seconds:.2f} "
        f"steady_ratio={steady_seconds / aggregate_seconds:.2f} "
        f"floor_ratio={floor_seconds / aggregate_seconds:.2f}"
    )


if __name__ == "__main__":
    main()
