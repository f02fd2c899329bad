#!/usr/bin/env python
"""Benchmark: the impact preview of a draft against a bare SQL aggregate of the same orders.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/preview.py --scale 200000

Builds a synthetic merchant in a scratch database beside the one in DATABASE_URL
(``<name>_bench_preview``, dropped and re-created): N members with ten orders each,
the demo programme, everyone placed by a recompute. A draft then lowers every tier's
upgrade and retention thresholds by 10 % in every group (so members move up, and
members move down at review where a raised retention would bite: both paths of the
statement are exercised). Times the whole preview (the set-based movements, the gifts
and e-mails, the sample members' explanations, the tier mix) and, in the same run, a
bare ``SUM ... GROUP BY member_id`` over the same orders. Last line:

    preview: members=N seconds=S aggregate_seconds=A ratio=S/A
"""

import argparse
import time

from synthetic import build_merchant, scratch_database, setup_django, time_aggregate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=200_000, help="members")
    n = parser.parse_args().scale

    scratch_database("_bench_preview")
    setup_django()

    from django.db.models import F

    from membership.services import recompute_members
    from membership.services.preview import preview
    from membership.services.versions import create_draft

    build_merchant(n)
    recompute_members(notify=False)
    draft = create_draft(actor=None, name="bench")
    draft.thresholds.filter(upgrade_threshold__gt=0).update(
        upgrade_threshold=F("upgrade_threshold") * 9 / 10,
        retention_threshold=F("retention_threshold") * 9 / 10,
    )

    time_aggregate()  # both timings below run with the orders in the cache
    start = time.perf_counter()
    result = preview(draft)
    seconds = time.perf_counter() - start
    aggregate_seconds = min(time_aggregate() for _ in range(3))
    print(
        f"up={result.up} down={result.down} group={result.group_changes} "
        f"gifts={result.gifts} emails={result.emails} movements={len(result.movements)}",
        flush=True,
    )
    print(
        f"preview: members={n} seconds={seconds:.2f} "
        f"aggregate_seconds={aggregate_seconds:.2f} ratio={seconds / aggregate_seconds:.2f}"
    )


if __name__ == "__main__":
    main()
