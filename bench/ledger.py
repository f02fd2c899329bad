#!/usr/bin/env python
"""Benchmark: awards posted through the points ledger against pgbench doing the bare writes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/ledger.py --scale 200000

N members with points accounts in a scratch database, each holding one earlier earning
(an entry and its lot; pgbench's tables get the same rows). 8 concurrent clients (processes, as
real workers are, each with its own connection) post awards through points.services.earn;
20% of the postings repeat an earlier idempotency key of that client (same amount).
Then pgbench, 8 clients, runs a custom script of the same shape: insert one row, update
one balance. Finally every balance is checked against the ledger and the lots, and the
total against the unique postings.
Last line:

    ledger: postings=P per_s=R p99_ms=L pgbench_per_s=B lost=0 doubled=0 ratio=R/B
"""

import argparse
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import tempfile
import time
from urllib.parse import urlparse

from synthetic import scratch_database, setup_django

CLIENTS = 8
OPENING = 100


def client(seed: int, postings: int, lo: int, hi: int, ready, results):
    """One worker process: new awards, and 20% repeats of its own earlier keys.

    It connects first and waits for the others, so the clock measures posting, not
    process start-up; it reports (issued, latencies, start, end).
    """
    from django.db import connection

    from points import services

    connection.ensure_connection()
    ready.wait()
    began = time.perf_counter()
    rng = random.Random(seed)
    issued: list[tuple[str, int, int]] = []
    latencies: list[float] = []
    for i in range(postings):
        repeat = bool(issued) and rng.random() < 0.2
        if repeat:
            key, member_id, points = rng.choice(issued)
        else:
            key, member_id, points = f"c{seed}-{i}", rng.randint(lo, hi), rng.randint(1, 100)
        start = time.perf_counter()
        services.earn(member_id=member_id, points=points, source="bench", source_ref=key, key=key)
        latencies.append((time.perf_counter() - start) * 1000)
        if not repeat:
            issued.append((key, member_id, points))
    ended = time.perf_counter()
    connection.close()
    results.put((issued, latencies, began, ended))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=200_000, help="members with accounts")
    parser.add_argument("--postings", type=int, default=2000, help="postings per client")
    parser.add_argument("--seconds", type=int, default=15, help="pgbench duration")
    args = parser.parse_args()
    n = args.scale

    url = scratch_database("_bench_ledger")
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    from points import services
    from points.models import Entry

    call_command("migrate", verbosity=0)
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO membership_member (name, phone, email, language, joined_at) "
            "SELECT 'm' || g, '', '', 'zh-hant', now() FROM generate_series(1, %s) g",
            [n],
        )
        # A merchant's ledger is not empty: every account starts with one earning (100 points,
        # an entry and its lot), and pgbench's tables with the same.
        cur.execute(
            "INSERT INTO points_account (member_id, balance, shortfall) "
            f"SELECT id, {OPENING}, 0 FROM membership_member"
        )
        cur.execute(
            "INSERT INTO points_entry (account_id, kind, points, source, source_ref, "
            "idempotency_key, shortfall, reason, created_at) "
            f"SELECT id, 'earn', {OPENING}, 'opening', id::text, 'opening:' || id, 0, '', now() "
            "FROM points_account"
        )
        cur.execute(
            "INSERT INTO points_lot (entry_id, account_id, points, remaining, available_at, "
            "expires_at) SELECT id, account_id, points, points, now(), now() + interval '1 year' "
            "FROM points_entry"
        )
        cur.execute("SELECT min(id), max(id) FROM membership_member")
        lo, hi = cur.fetchone()
        cur.execute(
            "CREATE TABLE bench_account (id bigint PRIMARY KEY, balance bigint NOT NULL);"
            f"INSERT INTO bench_account SELECT id, {OPENING} FROM membership_member;"
            "CREATE TABLE bench_entry (id bigserial PRIMARY KEY, account_id bigint NOT NULL, "
            "points bigint NOT NULL, key text UNIQUE NOT NULL);"
            f"INSERT INTO bench_entry (account_id, points, key) "
            f"SELECT id, {OPENING}, 'opening:' || id FROM membership_member;"
        )
    connection.close()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
        # Both measurements start from a fresh checkpoint: the set-up's WAL is not theirs.
        cur.execute("CHECKPOINT")

    connection.close()  # each forked client opens its own connection
    ctx = multiprocessing.get_context("fork")
    ready, queue = ctx.Barrier(CLIENTS), ctx.Queue()
    workers = [
        ctx.Process(target=client, args=(seed, args.postings, lo, hi, ready, queue))
        for seed in range(CLIENTS)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    # From the moment every client is connected to the last posting (perf_counter is the
    # system-wide monotonic clock, the same in every process).
    seconds = max(end for *_x, end in results) - min(start for *_x, start, _end in results)
    issued = [posting for mine, *_rest in results for posting in mine]
    latencies = [ms for _mine, lat, *_rest in results for ms in lat]

    expected = OPENING * n + sum(points for _key, _member, points in issued)
    with connection.cursor() as cur:
        cur.execute("SELECT COALESCE(SUM(balance), 0) FROM points_account")
        actual = int(cur.fetchone()[0])
    rows = Entry.objects.count()
    lost = max(expected - actual, 0)
    doubled = max(actual - expected, 0) + max(rows - n - len(issued), 0)
    wrong = services.ledger_discrepancies()
    if wrong:
        raise SystemExit(f"{len(wrong)} balances disagree with the ledger")

    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(
            f"\\set aid random({lo}, {hi})\n\\set delta random(1, 100)\n"
            "BEGIN;\n"
            "INSERT INTO bench_entry (account_id, points, key) "
            "VALUES (:aid, :delta, md5(random()::text));\n"
            "UPDATE bench_account SET balance = balance + :delta WHERE id = :aid;\n"
            "END;\n"
        )
    with connection.cursor() as cur:
        cur.execute("CHECKPOINT")
    parts = urlparse(url)
    out = subprocess.run(
        [
            "pgbench",
            "-n",
            "-c",
            str(CLIENTS),
            "-j",
            "2",
            "-T",
            str(args.seconds),
            "-f",
            script.name,
            "-h",
            parts.hostname or "127.0.0.1",
            "-p",
            str(parts.port or 5432),
            "-U",
            parts.username or "postgres",
            parts.path.lstrip("/"),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PGPASSWORD": parts.password or ""},
    ).stdout
    pgbench_tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
    os.unlink(script.name)

    postings = len(latencies)
    per_s = postings / seconds
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(
        f"unique={len(issued)} repeated={postings - len(issued)} rows={rows - n} "
        f"balance_total={actual - OPENING * n}"
    )
    print(
        f"ledger: postings={postings} per_s={per_s:.0f} p99_ms={p99:.1f} "
        f"pgbench_per_s={pgbench_tps:.0f} lost={lost} doubled={doubled} "
        f"ratio={per_s / pgbench_tps:.2f}"
    )


if __name__ == "__main__":
    main()
