"""Read replicas: pages that tolerate a second of lag read from one; all else from the primary.

With DATABASE_REPLICA_URL set (README "Read replicas"), the ``replica`` database alias
is a streaming replica of ``default``. What reads from it is chosen per view, never
by default: a view marked ``@reads_from_replica`` (the member's own pages, the CSV
exports, the KPI dashboard) runs with its reads routed there by ``PrimaryReplicaRouter``.
Everything stays on the primary when:

- it writes (every write goes to the primary, and so does every read inside a
  transaction on it, which is where a service reads what it is about to change);
- the model is a login's (sessions, users, second factors, lockouts): a login that
  just happened must not look logged out because the replica is behind;
- the visitor changed something a moment ago: every POST, PUT, PATCH or DELETE sets a
  cookie that keeps their reads on the primary for READ_YOUR_WRITES_SECONDS, so a
  member who just redeemed points sees the new balance, not the replica's old one.
  A forged cookie only sends its holder's reads to the primary.
- no replica is configured (``READ_REPLICA`` off): the alias then mirrors ``default``
  and nothing is routed to it.
"""

import contextvars
import functools
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"
PIN_COOKIE = "primary_until"
# Models that always read from the primary: logins and everything a login reads.
PRIMARY_ONLY_APPS = frozenset(
    {"auth", "sessions", "contenttypes", "admin", "axes", "otp_totp", "otp_static", "django_otp"}
)

_replica_reads = contextvars.ContextVar("replica_reads", default=False)


def replica_configured() -> bool:
    return bool(getattr(settings, "READ_REPLICA", False)) and REPLICA in settings.DATABASES


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints):
        if (
            _replica_reads.get()
            and replica_configured()
            and model._meta.app_label not in PRIMARY_ONLY_APPS
            and not connections[DEFAULT_DB_ALIAS].in_atomic_block
        ):
            return REPLICA
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # One database seen twice: a member read from the replica is the primary's member.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS


def pinned_to_primary(request) -> bool:
    """The visitor changed something within the last READ_YOUR_WRITES_SECONDS."""
    try:
        return float(request.COOKIES.get(PIN_COOKIE, "0")) > time.time()
    except ValueError:
        return False


def _streamed_with_replica_reads(content: Iterator) -> Iterator:
    # A streamed export runs its queries while the server sends it, after the view returned.
    token = _replica_reads.set(True)
    try:
        yield from content
    finally:
        _replica_reads.reset(token)


def reads_from_replica(view):
    """Route the view's reads (and its streamed response's) to the replica, if any."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not replica_configured() or pinned_to_primary(request):
            return view(request, *args, **kwargs)
        token = _replica_reads.set(True)
        try:
            response = view(request, *args, **kwargs)
        finally:
            _replica_reads.reset(token)
        if getattr(response, "streaming", False):
            response.streaming_content = _streamed_with_replica_reads(response.streaming_content)
        return response

    return wrapped


class ReadYourWritesMiddleware:
    """After a request that may have written, the visitor reads from the primary a while."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE") and replica_configured():
            seconds = settings.READ_YOUR_WRITES_SECONDS
            response.set_cookie(
                PIN_COOKIE,
                f"{time.time() + seconds:.3f}",
                max_age=seconds,
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response
