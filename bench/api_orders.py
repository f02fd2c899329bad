#!/usr/bin/env python
"""Benchmark: orders sent to the API with retries, against a trivial one-row view.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/api_orders.py --scale 200000

Builds a synthetic merchant (bench/synthetic.py) in a scratch database, makes an API key,
serves the site with gunicorn and production settings, and sends orders to
``POST /api/v1/orders/`` from 8 client processes (keep-alive connections). One request
in five repeats an order already planned (possibly still in flight on another client),
as a shop retrying after a timeout does; a 409 (still in flight) is retried after a
pause. Then the same clients call ``/health/`` (one row by primary key). Afterwards the
database must hold every planned order exactly once, with its amount.

The run changes the merchant (orders, points, tiers, idempotency keys), so the built
database is also kept as a copy; ``--reuse`` re-creates the scratch database from that
copy instead of building it (minutes at 200,000 members): every planned order is new
again (the copy holds none of them), against the same members in the same state as the
first run. Last line:

    api_orders: requests=R per_s=X p95_ms=P trivial_p95_ms=T lost=0 doubled=0 ratio=P/T
"""

import argparse
import datetime as dt
import http.client
import json
import multiprocessing
import os
import random
import statistics
import time

from synthetic import (
    build_merchant,
    keep_built_state,
    production_server,
    restore_built_state,
    scratch_database,
    setup_django,
)

SECRET = "bench-only-secret-" + "x" * 40
CLIENTS = 8
REPEAT_SHARE = 0.2
SUFFIX = "_bench_api_orders"


def plan(members: int, per_client: int, seed: int = 7) -> tuple[dict, list[list[str]]]:
    """Unique orders, and each client's sequence of order ids (20% of them repeats)."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    orders: dict[str, dict] = {}
    sequences: list[list[str]] = [[] for _ in range(CLIENTS)]
    for _step in range(per_client):
        for client in range(CLIENTS):
            if orders and rng.random() < REPEAT_SHARE:
                sequences[client].append(rng.choice(list(orders)))
                continue
            order_id = f"API-{len(orders) + 1:07d}"
            orders[order_id] = {
                "order_id": order_id,
                "member_external_id": f"B{rng.randint(1, members)}",
                "amount": rng.randint(1, 300) * 100,
                "placed_at": (now - dt.timedelta(minutes=rng.randint(0, 600))).isoformat(),
                "channel": "web",
            }
            sequences[client].append(order_id)
    return orders, sequences


def send_orders(port: int, key: str, orders: dict, sequence: list[str], out) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies, statuses = [], {}
    for order_id in sequence:
        body = json.dumps(orders[order_id])
        while True:
            start = time.perf_counter()
            conn.request("POST", "/api/v1/orders/", body=body, headers=headers)
            response = conn.getresponse()
            text = response.read()
            latencies.append((time.perf_counter() - start) * 1000)
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status == 409:
                time.sleep(0.05)  # the first request with this key is still running
                continue
            if response.status not in (200, 201):
                out.put(("error", f"HTTP {response.status} {text[:300]!r}"))
                return
            break
    conn.close()
    out.put(("ok", latencies, statuses))


def get_health(port: int, count: int, out) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        conn.request("GET", "/health/")
        response = conn.getresponse()
        response.read()
        latencies.append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            out.put(("error", f"/health/: HTTP {response.status}"))
            return
    conn.close()
    out.put(("ok", latencies, {200: count}))


def run_clients(target, args_for) -> tuple[list[float], dict, float]:
    out = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=target, args=(*args_for(i), out)) for i in range(CLIENTS)
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()
    errors = [r[1] for r in results if r[0] == "error"]
    if errors:
        raise SystemExit(errors[0])
    latencies = [x for r in results for x in r[1]]
    statuses: dict = {}
    for r in results:
        for status, n in r[2].items():
            statuses[status] = statuses.get(status, 0) + n
    return latencies, statuses, elapsed


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[94]


def check(orders: dict) -> tuple[int, int, int]:
    """(lost, doubled, wrong): planned orders missing, recorded twice, or with another amount."""
    from django.db.models import Count

    from membership.models import Order

    recorded = {
        row["external_id"]: row
        for row in Order.objects.filter(source="shop", external_id__startswith="API-")
        .values("external_id")
        .annotate(n=Count("id"))
    }
    amounts = dict(
        Order.objects.filter(source="shop", external_id__startswith="API-").values_list(
            "external_id", "amount"
        )
    )
    lost = sum(1 for order_id in orders if order_id not in recorded)
    doubled = sum(row["n"] - 1 for row in recorded.values()) + len(set(recorded) - set(orders))
    wrong = sum(
        1 for order_id, o in orders.items() if amounts.get(order_id, o["amount"]) != o["amount"]
    )
    return lost, doubled, wrong


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=200_000, help="members")
    parser.add_argument("--requests", type=int, default=250, help="orders per client")
    parser.add_argument(
        "--reuse", action="store_true", help="start again from the merchant the last build kept"
    )
    args = parser.parse_args()

    os.environ["DJANGO_SECRET_KEY"] = SECRET
    if args.reuse:
        url = restore_built_state(SUFFIX)
        from membership.models import Member

        # The members' external ids are B1…Bn: the plan must name members that exist.
        args.scale = Member.objects.count()
    else:
        url = scratch_database(SUFFIX)
        setup_django()
        from membership.services import recompute_members

        build_merchant(args.scale)
        recompute_members()
        keep_built_state(SUFFIX)
    from api.keys import create_api_key
    from api.models import Scope

    key = create_api_key(name="bench shop", scopes=[Scope.ORDERS_WRITE], actor=None).plaintext
    orders, sequences = plan(args.scale, args.requests)
    warm_orders, warm_sequences = plan(args.scale, 10, seed=1)
    warm_orders = {f"WARM-{k}": {**v, "order_id": f"WARM-{k}"} for k, v in warm_orders.items()}
    warm_sequences = [[f"WARM-{k}" for k in s] for s in warm_sequences]

    # Throughput is measured, not the per-key rate limit.
    with production_server(url, API_RATE_LIMIT="1000000/min") as port:
        # Warm-up: workers connect, code paths load.
        run_clients(send_orders, lambda i: (port, key, warm_orders, warm_sequences[i]))
        run_clients(get_health, lambda i: (port, 20))
        latencies, statuses, elapsed = run_clients(
            send_orders, lambda i: (port, key, orders, sequences[i])
        )
        trivial, _statuses, trivial_elapsed = run_clients(
            get_health, lambda i: (port, args.requests)
        )
    lost, doubled, wrong = check(orders)
    if wrong:
        raise SystemExit(f"{wrong} orders were recorded with another amount")
    planned = sum(len(s) for s in sequences)
    print(
        f"members={args.scale} clients={CLIENTS} planned_sends={planned} "
        f"unique_orders={len(orders)} statuses={dict(sorted(statuses.items()))} "
        # Both phases keep the machine busy: each p95 follows what one request costs.
        f"trivial_per_s={len(trivial) / trivial_elapsed:.1f}"
    )
    print(
        f"api_orders: requests={len(latencies)} per_s={len(latencies) / elapsed:.1f} "
        f"p95_ms={p95(latencies):.1f} trivial_p95_ms={p95(trivial):.1f} lost={lost} "
        f"doubled={doubled} ratio={p95(latencies) / p95(trivial):.2f}"
    )


if __name__ == "__main__":
    main()
