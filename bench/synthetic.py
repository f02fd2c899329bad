"""A synthetic merchant for the benchmarks, built set-based in a scratch database."""

import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse, urlunparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def scratch_database(suffix: str) -> str:
    """Drop and re-create ``<name><suffix>`` beside DATABASE_URL's database; point Django at it."""
    import psycopg

    url, name = _base_url_and_name(suffix)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    scratch = urlunparse(urlparse(url)._replace(path="/" + name))
    os.environ["DATABASE_URL"] = scratch
    return scratch


def kept_database(suffix: str) -> str:
    """Point Django at ``<name><suffix>``, a scratch database a bench kept (``--keep``),
    set it up and migrate it, for ``--reuse``. Returns its URL."""
    parts = urlparse(os.environ["DATABASE_URL"])
    url = urlunparse(parts._replace(path=parts.path + suffix))
    os.environ["DATABASE_URL"] = url
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def _base_url_and_name(suffix: str) -> tuple[str, str]:
    """DATABASE_URL (as the bench was started with) and ``<its name><suffix>``."""
    url = os.environ.get("DATABASE_URL", "")
    parts = urlparse(url)
    if not parts.scheme.startswith("postgres"):
        sys.exit("bench needs PostgreSQL: set DATABASE_URL=postgres://…")
    return url, parts.path.lstrip("/") + suffix


def keep_built_state(suffix: str) -> None:
    """Copy the scratch database ``<name><suffix>`` (just built, Django pointed at it) to
    ``<name><suffix>_built``, for a bench whose run changes the data it measures: each
    ``--reuse`` starts from this copy (``restore_built_state``), as the first run did."""
    import psycopg
    from django.db import connections

    connections.close_all()  # CREATE DATABASE … TEMPLATE needs the source unused
    scratch = urlparse(os.environ["DATABASE_URL"])
    name = scratch.path.lstrip("/")
    base = urlunparse(scratch._replace(path="/" + name.removesuffix(suffix)))
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}_built" WITH (FORCE)')
        # FILE_COPY: the files copied as they are, seconds for a gigabyte (WAL_LOG logs
        # every page).
        conn.execute(f'CREATE DATABASE "{name}_built" TEMPLATE "{name}" STRATEGY FILE_COPY')


def restore_built_state(suffix: str) -> str:
    """Re-create ``<name><suffix>`` from the copy ``keep_built_state`` made, point Django at
    it and migrate it (``--reuse`` of a bench whose run changes its data). Returns its URL."""
    import psycopg

    base, name = _base_url_and_name(suffix)
    with psycopg.connect(base, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name + "_built"])
        if found.fetchone() is None:
            sys.exit(f"no {name}_built: run the bench once without --reuse")
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{name}_built" STRATEGY FILE_COPY')
    return kept_database(suffix)


def setup_django(broker: str = "memory://") -> None:
    # Tier e-mails are queued, not sent: what is measured is the product's own work.
    # (A bench that starts real workers passes their broker.)
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Production settings: DEBUG off, so Django does not keep every query in memory.
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-" + "x" * 40)
    import django

    django.setup()


def login_backend(username: str, password: str) -> str:
    """The backend a real login with these credentials records in its session: the
    benches' sessions carry it, as their visitors' would."""
    from django.contrib.auth import authenticate
    from django.test import RequestFactory

    user = authenticate(RequestFactory().post("/login/"), username=username, password=password)
    if user is None:
        raise SystemExit(f"{username} could not log in")
    return user.backend


def build_merchant(members: int) -> int:
    """The demo programme, ``members`` members with ten orders each over two years,
    3% tagged 企業客戶, 1% 員工, 1% KOL. Returns the number of orders."""
    from django.core.management import call_command
    from django.db import connection

    from membership.management.commands.seed_demo import Command as Seed

    call_command("migrate", verbosity=0)
    Seed()._programme()
    start = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO membership_member (name, phone, email, language, joined_at, external_id) "
            "SELECT 'm' || g, '', '', 'zh-hant', now() - (g %% 1500) * interval '1 day', 'B' || g "
            "FROM generate_series(1, %s) g",
            [members],
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
    print(f"built {members} members and {orders} orders in {time.perf_counter() - start:.1f}s")
    return orders


@contextmanager
def production_server(database_url: str, **extra_env: str) -> Iterator[int]:
    """The site as production runs it — gunicorn with the repository's gunicorn.conf.py,
    DEBUG off, collected static files — on a free loopback port, answering /health/;
    stopped on the way out."""
    import http.client
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-secret-" + "x" * 40,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DB_CONN_MAX_AGE": "60",
        "LOG_LEVEL": "WARNING",
        **extra_env,
    }
    root = Path(__file__).resolve().parent.parent
    # Production storage (hashed names, whitenoise): collected with production settings.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
        cwd=root,
        env=env,
        check=True,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-c", "gunicorn.conf.py"]
        + ["-b", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=root,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/health/")
                break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:  # a loaded machine: don't lose the run's results
            server.kill()
            server.wait()


# The outer sum keeps the per-member SUM computed: under a bare count(*) PostgreSQL
# replaces the unused SUM with NULL and only groups the rows (EXPLAIN VERBOSE shows
# "NULL::numeric"), which is not the aggregate the benches compare against.
AGGREGATE = (
    "SELECT count(*), sum(s.total) FROM (SELECT member_id, SUM(amount - refunded_amount) "
    "AS total FROM membership_order WHERE status = 'paid' GROUP BY member_id) s"
)


def twin(cur, table: str, *, copy_rows: bool) -> None:
    """``floor_<table>``: ``table``'s columns, indexes and foreign keys, empty or with its
    rows: where the benches write a job's rows again bare (their write floors)."""
    cur.execute(f"DROP TABLE IF EXISTS floor_{table}")
    cur.execute(f"CREATE TABLE floor_{table} (LIKE {table} INCLUDING ALL)")
    cur.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f'",
        [table],
    )
    for (definition,) in cur.fetchall():
        cur.execute(f"ALTER TABLE floor_{table} ADD {definition}")
    if copy_rows:
        cur.execute(f"INSERT INTO floor_{table} SELECT * FROM {table}")
        cur.execute(f"VACUUM ANALYZE floor_{table}")


def time_aggregate() -> float:
    """The baseline of the set-based benches: a bare SUM … GROUP BY member_id of the orders."""
    from django.db import connection

    with connection.cursor() as cur:
        start = time.perf_counter()
        cur.execute(AGGREGATE)
        cur.fetchone()
        return time.perf_counter() - start


def drive_get(
    port: int,
    request: Callable[[random.Random], tuple[str, dict]],
    *,
    clients: int,
    per_client: int,
    timeout: int = 60,
) -> list[float]:
    """GET from ``clients`` threads, each on its own keep-alive connection, ``per_client``
    times; ``request(rng)`` names each path and its headers. Milliseconds per request;
    any answer but 200 stops the run with its path and body."""
    import http.client

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        mine = []
        for _ in range(per_client):
            path, headers = request(rng)
            start = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            mine.append((time.perf_counter() - start) * 1000)
            if response.status != 200:
                with lock:
                    errors.append(f"{path}: HTTP {response.status} {body[:300]!r}")
                return
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(errors[0])
    return latencies


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]
