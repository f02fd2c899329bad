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
import time

from synthetic import build_merchant, scratch_database, setup_django, time_aggregate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=200_000, help="members")
    n = parser.parse_args().scale

    scratch_database("_bench_recompute")
    setup_django()

    from membership.services import recompute_members

    orders = build_merchant(n)

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
