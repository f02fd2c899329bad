#!/usr/bin/env python
"""Benchmark: the full tier recompute against a bare SQL aggregate of the same orders.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/recompute.py --scale 200000

Builds a synthetic merchant in a scratch database beside the one in DATABASE_URL
(``<name>_bench_recompute``, dropped and re-created): N members with ten orders each
over two years, 3% of them tagged 企業客戶, 1% 員工, 1% KOL, and the demo programme.
Times the cold recompute (every member's group and tier to be found, history rows
and gifts written) and, in the same run, a bare ``SUM ... GROUP BY member_id`` over
the same orders. Last line:

    recompute: members=N orders=M seconds=S aggregate_seconds=A ratio=S/A
"""

import argparse
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def scratch_database(url: str, suffix: str) -> str:
    import psycopg

    parts = urlparse(url)
    if not parts.scheme.startswith("postgres"):
        sys.exit("bench needs PostgreSQL: set DATABASE_URL=postgres://…")
    name = parts.path.lstrip("/") + suffix
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunparse(parts._replace(path="/" + name))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=200_000, help="members")
    args = parser.parse_args()
    n = args.scale

    os.environ["DATABASE_URL"] = scratch_database(
        os.environ.get("DATABASE_URL", ""), "_bench_recompute"
    )
    # Tier e-mails are queued, not sent: the recompute's own work is what is measured.
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from membership.management.commands.seed_demo import Command as Seed
    from membership.services import recompute_members

    call_command("migrate", verbosity=0)
    Seed()._programme()
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO membership_member (name, phone, email, language, joined_at, external_id) "
            "SELECT 'm' || g, '', '', 'zh-hant', now() - (g %% 1500) * interval '1 day', 'B' || g "
            "FROM generate_series(1, %s) g",
            [n],
        )
        cur.execute(
            "INSERT INTO membership_order (member_id, source, external_id, channel, amount, "
            "refunded_amount, placed_at, status, created_at) "
            "SELECT m.id, 'shop', m.id || '-' || k, 'web', a.amount, "
            "CASE WHEN random() < 0.03 THEN a.amount ELSE 0 END, "
            "now() - random() * interval '730 days', 'paid', now() "
            "FROM membership_member m CROSS JOIN generate_series(1, 10) k "
            "CROSS JOIN LATERAL (SELECT (100 + random() * 4000 * (1 + (m.id % 7)))::bigint "
            "AS amount WHERE k > 0) a"
        )
        for tag, share in [("企業客戶", 33), ("員工", 100), ("KOL", 101)]:
            cur.execute(
                "INSERT INTO membership_membertag (member_id, tag_id, added_at) "
                "SELECT m.id, t.id, now() FROM membership_member m, membership_tag t "
                "WHERE t.name = %s AND m.id %% %s = 0",
                [tag, share],
            )
        cur.execute("SELECT count(*) FROM membership_order")
        orders = cur.fetchone()[0]
    connection.close()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    print(f"built {n} members and {orders} orders in {time.perf_counter() - t0:.1f}s", flush=True)

    aggregate = (
        "SELECT count(*) FROM (SELECT member_id, SUM(amount - refunded_amount) "
        "FROM membership_order WHERE status = 'paid' GROUP BY member_id) s"
    )

    def time_aggregate() -> float:
        with connection.cursor() as cur:
            start = time.perf_counter()
            cur.execute(aggregate)
            cur.fetchone()
            return time.perf_counter() - start

    time_aggregate()  # both timings below run with the orders in the cache
    start = time.perf_counter()
    result = recompute_members()
    seconds = time.perf_counter() - start
    aggregate_seconds = min(time_aggregate() for _ in range(3))
    print(
        f"changed={result.changed} history_rows={result.history_rows} gifts={result.gifts}",
        flush=True,
    )
    # The daily case: everyone already placed, nothing to change.
    start = time.perf_counter()
    again = recompute_members()
    steady_seconds = time.perf_counter() - start
    print(f"second run changed={again.changed} history_rows={again.history_rows}", flush=True)
    print(
        f"recompute: members={n} orders={orders} seconds={seconds:.2f} "
        f"aggregate_seconds={aggregate_seconds:.2f} steady_seconds={steady_seconds:.2f} "
        f"ratio={seconds / aggregate_seconds:.2f}"
    )


if __name__ == "__main__":
    main()
