#!/usr/bin/env python
"""Benchmark: the nightly segment job and the KPI dashboard against a bare SQL aggregate.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/segments.py --scale 200000

Builds the synthetic merchant of bench/recompute.py (N members, ten orders each over
two years, the demo programme, everyone placed) in a scratch database beside the one in
DATABASE_URL (``<name>_bench_segments``), adds a holiday promotion, then times the
nightly job — segments and system tags (cold: every member enters their tags), then the
day's KPI snapshots with the first run's twelve-month backfill — and, in the same run,
a bare ``SUM ... GROUP BY member_id`` over the same orders, and the dashboard page over
50 requests as a logged-in operator (in process, production settings). Last line:

    segments: members=N orders=M seconds=S steady_seconds=T aggregate_seconds=A
              dashboard_p95_ms=D ratio=S/A steady_ratio=T/A floor_ratio=F/A

``seconds`` is the cold first run (every member enters their system tags, the KPI
backfill); ``steady_seconds`` a second run the same night (nothing moves). ``F``, the write floor,
is the cold run's rows copied bare into empty twins of their tables (``write_floor``):
the least a cold run that keeps these rows in these tables can take.
"""

import argparse
import os
import statistics
import time

from synthetic import build_merchant, scratch_database, setup_django, time_aggregate, twin

# What the cold run writes: each member's segment row, and their system tags with the
# tag-history row of each entry.
WRITTEN = [
    ("segments_membersegment", "TRUE"),
    (
        "membership_membertag",
        "tag_id IN (SELECT id FROM membership_tag WHERE kind = 'system')",
    ),
    ("membership_taghistory", "TRUE"),
]


def write_floor() -> tuple[float, int]:
    """The cold run's rows written again, bare: copied into empty twins of their tables
    (the same columns, indexes and foreign keys) in one transaction, nothing computed.
    No run that keeps these rows in these tables writes them faster, so
    ``floor_seconds / A`` bounds the cold ratio from below. Returns (seconds, rows)."""
    from django.db import connection, transaction

    with connection.cursor() as cur:
        for table, _where in WRITTEN:
            twin(cur, table, copy_rows=False)
        rows = 0
        start = time.perf_counter()
        with transaction.atomic():
            for table, where in WRITTEN:
                cur.execute(f"INSERT INTO floor_{table} SELECT * FROM {table} WHERE {where}")
                rows += cur.rowcount
        seconds = time.perf_counter() - start
        for table, _where in WRITTEN:
            cur.execute(f"DROP TABLE floor_{table}")
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=200_000, help="members")
    n = parser.parse_args().scale

    scratch_database("_bench_segments")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
    # The bench's operator logs in without an authenticator app (production asks for one).
    os.environ.setdefault("STAFF_TOTP_REQUIRED", "0")
    setup_django()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from membership.services import recompute_members
    from segments.kpis import take_snapshots
    from segments.services import compute_segments

    orders = build_merchant(n)
    recompute_members()
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO points_promotion (name, starts_at, ends_at, multiplier) "
            "VALUES ('雙 11', now() - interval '14 days', now() - interval '12 days', 3)"
        )
        cur.execute("VACUUM ANALYZE")

    time_aggregate()  # both timings below run with the orders in the cache
    start = time.perf_counter()
    run = compute_segments()
    segment_seconds = time.perf_counter() - start
    start = time.perf_counter()
    rows = take_snapshots()
    snapshot_seconds = time.perf_counter() - start
    seconds = segment_seconds + snapshot_seconds
    aggregate_seconds = min(time_aggregate() for _ in range(3))
    print(
        f"segments {segment_seconds:.2f}s ({run.buyers} buyers, {run.tag_changes} tag changes), "
        f"snapshots {snapshot_seconds:.2f}s ({rows} rows)",
        flush=True,
    )
    floor_seconds, floor_rows = write_floor()
    print(f"write floor {floor_seconds:.2f}s ({floor_rows} rows)", flush=True)
    # The nightly case: yesterday's segments in place, few members move.
    start = time.perf_counter()
    again = compute_segments()
    take_snapshots()
    steady_seconds = time.perf_counter() - start
    print(f"second run {steady_seconds:.2f}s ({again.tag_changes} tag changes)", flush=True)

    call_command("collectstatic", "--no-input", verbosity=0)  # the admin's manifest
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "x")
    client = Client()
    client.force_login(user)
    timings = []
    for _ in range(50):
        start = time.perf_counter()
        response = client.get("/admin/segments/membersegment/dashboard/", secure=True)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    p95 = statistics.quantiles(timings, n=20)[-1]
    print(
        f"segments: members={n} orders={orders} seconds={seconds:.2f} "
        f"steady_seconds={steady_seconds:.2f} aggregate_seconds={aggregate_seconds:.2f} "
        f"dashboard_p95_ms={p95:.1f} ratio={seconds / aggregate_seconds:.2f} "
        f"steady_ratio={steady_seconds / aggregate_seconds:.2f} "
        f"floor_ratio={floor_seconds / aggregate_seconds:.2f}"
    )


if __name__ == "__main__":
    main()
