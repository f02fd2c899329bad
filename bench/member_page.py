#!/usr/bin/env python
"""Benchmark: the member's tier page under load, against a trivial one-row view.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/member_page.py --scale 200000

Builds a synthetic merchant (bench/synthetic.py) in a scratch database, places every
member, writes every member's summary (timed: ``summaries_seconds``), gives 400 random
members a login, a session and the CSRF cookie a login leaves, serves the site with
gunicorn and production settings, and drives 8 concurrent keep-alive clients at
``/me/`` of random members, then at ``/health/`` (one row by primary key). The scratch
database stays; ``--reuse`` measures it again without building it (migrating it, writing
every summary again and logging its members in afresh). Last line:

    member_page: p50_ms=… p95_ms=P trivial_p95_ms=T summaries_seconds=S ratio=P/T
"""

import argparse
import os
import time

from synthetic import (
    build_merchant,
    drive_get,
    kept_database,
    login_backend,
    percentile,
    production_server,
    scratch_database,
    setup_django,
)

SECRET = "bench-only-secret-" + "x" * 40
CLIENTS = 8
SUFFIX = "_bench_member_page"


def sessions_for(count: int) -> list[str]:
    """``count`` random members logged in: the cookies each one's browser sends."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH
    from django.utils.crypto import get_random_string

    from membership.models import Member

    ids = list(Member.objects.order_by("?").values_list("pk", flat=True)[:count])
    password = make_password("bench-password-1")  # hashed once: logins are not what is measured
    users = User.objects.bulk_create([User(username=f"bench{pk}", password=password) for pk in ids])
    for user, pk in zip(users, ids, strict=True):
        Member.objects.filter(pk=pk).update(user=user)
    backend = login_backend(users[0].username, "bench-password-1")
    cookies = []
    for user in users:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = backend
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        # The login form gave the browser its CSRF cookie, which it sends from then on.
        csrf = get_random_string(CSRF_SECRET_LENGTH, allowed_chars=CSRF_ALLOWED_CHARS)
        cookies.append(f"sessionid={session.session_key}; csrftoken={csrf}")
    return cookies


def forget_sessions() -> None:
    """Drop an earlier run's logins (``--reuse``): each run logs its members in afresh,
    so their sessions carry what a login records today."""
    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()
    User.objects.filter(username__startswith="bench").delete()


def drive(port: int, path: str, sessions: list[str], per_client: int) -> list[float]:
    def request(rng):
        return path, ({"Cookie": rng.choice(sessions)} if sessions else {})

    return drive_get(port, request, clients=CLIENTS, per_client=per_client, timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=200_000, help="members")
    parser.add_argument("--requests", type=int, default=250, help="requests per client")
    parser.add_argument("--reuse", action="store_true", help="measure the kept database again")
    args = parser.parse_args()

    os.environ["DJANGO_SECRET_KEY"] = SECRET
    if args.reuse:
        url = kept_database(SUFFIX)
    else:
        url = scratch_database(SUFFIX)
        setup_django()
        from membership.services import recompute_members

        build_merchant(args.scale)
        recompute_members()
    from membership.services.summary import rebuild_member_summaries

    # The deploy step after the migration: every member's summary, set-based.
    start = time.perf_counter()
    rebuild_member_summaries()
    summaries_seconds = time.perf_counter() - start
    if args.reuse:
        forget_sessions()
    sessions = sessions_for(400)

    with production_server(url) as port:
        drive(port, "/me/", sessions, 20)  # warm-up: workers connect, templates compile
        drive(port, "/health/", [], 20)
        page = drive(port, "/me/", sessions, args.requests)
        trivial = drive(port, "/health/", [], args.requests)
        # Printed before the server stops: a slow shutdown on a loaded machine loses nothing.
        print(f"requests={len(page)} clients={CLIENTS} members={args.scale}")
        print(
            f"member_page: p50_ms={percentile(page, 50):.1f} p95_ms={percentile(page, 95):.1f} "
            f"trivial_p95_ms={percentile(trivial, 95):.1f} "
            f"summaries_seconds={summaries_seconds:.2f} "
            f"ratio={percentile(page, 95) / percentile(trivial, 95):.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
