#!/usr/bin/env python
"""Benchmark: the admin's busiest pages at a million members, against a one-row view.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/admin_lists.py --scale 1000000

Builds a synthetic merchant (bench/synthetic.py: ``--scale`` members, ten orders each),
places every member, gives each a phone, an e-mail, a Chinese name and a points account
with two ledger entries, serves the site with gunicorn and production settings (staff
TOTP on: the operator's session carries a verified device), and drives 4 concurrent
keep-alive clients, logged in as the 營運人員 operator, at each page: the member
changelist (plain, page 2,000, by group, tier and tag, searched by name, phone, e-mail
and external id), the orders list (plain, by source, by channel), the ledger list
(plain, by source), a member's change page — then at ``/health/`` (one row by primary
key). Prints each page's p50/p95; last line:

    admin_lists: pages=K worst_p95_ms=P trivial_p95_ms=T ratio=P/T

``--keep`` leaves the scratch database for EXPLAIN; ``--reuse`` measures a kept one
again without building it (migrating it first). Without ``--keep`` it is dropped.
"""

import argparse
import os
import random
import time
from urllib.parse import quote, urlparse, urlunparse

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
CLIENTS = 4
SUFFIX = "_bench_admin_lists"

SURNAMES = "王李張劉陳楊黃趙吳周徐孫馬朱胡郭何林高羅"
GIVEN = "小志明美淑惠建文雅婷俊宏家豪怡君佳慧冠宇承"


def enrich(members: int) -> None:
    """Names, phones and e-mails to search for; accounts and ledger entries to list."""
    from django.db import connection

    start = time.perf_counter()
    with connection.cursor() as cur:
        # Three-character names as the shop's members have them, a few thousand alike.
        cur.execute(
            "UPDATE membership_member SET "
            "name = substr(%s::text, (1 + id %% 20)::int, 1) "
            "|| substr(%s::text, (1 + (id / 20) %% 20)::int, 1) "
            "|| substr(%s::text, (1 + (id / 400) %% 20)::int, 1), "
            "phone = '09' || lpad(id::text, 8, '0'), email = 'm' || id || '@example.com'",
            [SURNAMES, GIVEN, GIVEN],
        )
        cur.execute(
            "INSERT INTO points_account (member_id, balance, shortfall) "
            "SELECT id, 300, 0 FROM membership_member"
        )
        cur.execute(
            "INSERT INTO points_entry (account_id, kind, points, source, source_ref, "
            "idempotency_key, shortfall, reason, created_at) "
            "SELECT a.id, 'earn', 150, (ARRAY['order', 'birthday', 'action', 'referral'])[k], "
            "a.member_id || '-' || k, 'bench:' || a.id || ':' || k, 0, '', "
            "now() - random() * interval '730 days' "
            "FROM points_account a CROSS JOIN generate_series(1, 2) k"
        )
    connection.close()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    print(f"enriched {members} members in {time.perf_counter() - start:.1f}s")


def operator_session() -> str:
    """A session of the 營運人員 operator, past the password and the second factor."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp.plugins.otp_static.models import StaticDevice

    from membership.management.commands.seed_demo import operator_role

    user, _ = User.objects.get_or_create(username="bench-operator", defaults={"is_staff": True})
    user.set_password("bench-operator-password-1")
    user.save()
    user.groups.add(operator_role())
    device, _ = StaticDevice.objects.get_or_create(user=user, name="bench", confirmed=True)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = login_backend(user.username, "bench-operator-password-1")
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session["otp_device_id"] = device.persistent_id
    session.create()
    return session.session_key


def pages(samples: int) -> dict[str, list[str]]:
    """Each page's label and the paths its requests draw from (random members and terms)."""
    from membership.models import Member, MemberTag, Tier, VipGroup

    rng = random.Random(17)
    sample = list(
        Member.objects.filter(
            pk__in=[
                rng.randint(1, Member.objects.order_by("-pk").first().pk) for _ in range(samples)
            ]
        ).values("pk", "name", "phone", "email", "external_id")
    )
    group = VipGroup.objects.filter(members__isnull=False).order_by("priority").first()
    tier = Tier.objects.filter(members__isnull=False).order_by("-rank").first()
    tag = MemberTag.objects.values_list("tag_id", flat=True).order_by("tag_id").last()
    members = "/admin/membership/member/"
    phone = lambda p: f"{p[:4]}-{p[4:7]}-{p[7:]}"  # noqa: E731 as operators type it
    return {
        "members": [members],
        "members_page_2000": [members + "?p=2000"],
        "members_by_group": [members + f"?group__id__exact={group.pk}"],
        "members_by_tier": [members + f"?tier={tier.pk}"],
        "members_by_tag": [members + f"?tag={tag}"],
        "search_name": [members + "?q=" + quote(m["name"]) for m in sample],
        "search_phone": [members + "?q=" + quote(phone(m["phone"])) for m in sample],
        "search_email": [members + "?q=" + quote(m["email"].upper()) for m in sample],
        "search_external_id": [members + "?q=" + quote(m["external_id"]) for m in sample],
        "orders": ["/admin/membership/order/"],
        "orders_by_source": ["/admin/membership/order/?source=shop"],
        "orders_by_channel": ["/admin/membership/order/?channel=web"],
        "ledger": ["/admin/points/entry/"],
        "ledger_by_source": ["/admin/points/entry/?source=birthday"],
        "member_change": [f"{members}{m['pk']}/change/" for m in sample],
    }


def drive(port: int, paths: list[str], cookie: str, per_client: int) -> list[float]:
    headers = {"Cookie": f"sessionid={cookie}"} if cookie else {}
    return drive_get(
        port, lambda rng: (rng.choice(paths), headers), clients=CLIENTS, per_client=per_client
    )


def drop(url: str) -> None:
    import psycopg

    parts = urlparse(url)
    admin_url = urlunparse(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=1_000_000, help="members")
    parser.add_argument("--requests", type=int, default=25, help="requests per client and page")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", action="store_true", help="measure a kept database again")
    parser.add_argument("--build-only", action="store_true", help="build, keep, measure nothing")
    args = parser.parse_args()

    os.environ["DJANGO_SECRET_KEY"] = SECRET
    if args.reuse:
        url = kept_database(SUFFIX)
    else:
        url = scratch_database(SUFFIX)
        setup_django()
        from membership.services import recompute_members

        build_merchant(args.scale)
        start = time.perf_counter()
        recompute_members()
        print(f"placed members in {time.perf_counter() - start:.1f}s")
        enrich(args.scale)
        if args.build_only:
            return
    try:
        cookie = operator_session()
        page_paths = pages(200)
        from django.db import connection

        connection.close()
        results = {}
        with production_server(url) as port:
            for paths in page_paths.values():  # warm-up: workers connect, templates compile
                drive(port, paths, cookie, 2)
            drive(port, ["/health/"], "", 5)
            for label, paths in page_paths.items():
                results[label] = drive(port, paths, cookie, args.requests)
                print(
                    f"  {label:<20} p50_ms={percentile(results[label], 50):7.1f} "
                    f"p95_ms={percentile(results[label], 95):7.1f}",
                    flush=True,
                )
            trivial = drive(port, ["/health/"], "", args.requests)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop(url)
    worst = max(percentile(v, 95) for v in results.values())
    trivial_p95 = percentile(trivial, 95)
    print(f"members={args.scale} clients={CLIENTS} requests_per_page={CLIENTS * args.requests}")
    print(
        f"admin_lists: pages={len(results)} worst_p95_ms={worst:.1f} "
        f"trivial_p95_ms={trivial_p95:.1f} ratio={worst / trivial_p95:.2f}"
    )


if __name__ == "__main__":
    main()
