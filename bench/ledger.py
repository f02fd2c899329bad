#!/usr/bin/env python
"""Benchmark: awards posted through the points ledger against pgbench doing the bare writes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/ledger.py --scale 200000

N members with points accounts in a scratch database. 8 concurrent clients (processes, as
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


def client(seed: int, postings: int, lo: int, hi: int):
    """One worker process: new awards, and 20% repeats of its own earlier keys."""
    from django.db import connection

    from points import services

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
    connection.close()
    return issued, latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=200_000, help="members with accounts")
    parser.add_argument("--postings", type=int, default=800, help="postings per client")
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
        cur.execute(
            "INSERT INTO points_account (member_id, balance, shortfall) "
            "SELECT id, 0, 0 FROM membership_member"
        )
        cur.execute("SELECT min(id), max(id) FROM membership_member")
        lo, hi = cur.fetchone()
        cur.execute(
            "CREATE TABLE bench_account (id bigint PRIMARY KEY, balance bigint NOT NULL);"
            "INSERT INTO bench_account SELECT id, 0 FROM membership_member;"
            "CREATE TABLE bench_entry (id bigserial PRIMARY KEY, account_id bigint NOT NULL, "
            "points bigint NOT NULL, key text UNIQUE NOT NULL);"
        )
    connection.close()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")

    connection.close()  # each forked client opens its own connection
    ctx = multiprocessing.get_context("fork")
    start = time.perf_counter()
    with ctx.Pool(CLIENTS) as pool:
        results = pool.starmap(client, [(seed, args.postings, lo, hi) for seed in range(CLIENTS)])
    seconds = time.perf_counter() - start
    issued = [posting for mine, _lat in results for posting in mine]
    latencies = [ms for _mine, lat in results for ms in lat]

    expected = sum(points for _key, _member, points in issued)
    with connection.cursor() as cur:
        cur.execute("SELECT COALESCE(SUM(balance), 0) FROM points_account")
        actual = int(cur.fetchone()[0])
    rows = Entry.objects.count()
    lost = max(expected - actual, 0)
    doubled = max(actual - expected, 0) + max(rows - len(issued), 0)
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
        f"unique={len(issued)} repeated={postings - len(issued)} rows={rows} balance_total={actual}"
    )
    print(
        f"ledger: postings={postings} per_s={per_s:.0f} p99_ms={p99:.1f} "
        f"pgbench_per_s={pgbench_tps:.0f} lost={lost} doubled={doubled} "
        f"ratio={per_s / pgbench_tps:.2f}"
    )


if __name__ == "__main__":
    main()
