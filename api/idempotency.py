"""Idempotency keys as Stripe has them: the first answer is stored and replayed.

A POST claims its key with an INSERT in its own short transaction before any work, so a
second request with the key finds the claim at once: still running (409), another
request under the same key (422), or finished (the stored answer, replayed). The work
and the stored answer commit together, so a key is never finished without its work.
Malformed input, an unknown member or order and a server fault store nothing: the key
is released and the corrected request may use it again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException

from membership.sqltime import to_db

from .models import ApiKey, IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 100
KEPT_FOR = dt.timedelta(days=30)


class KeyInFlight(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("A request with this Idempotency-Key is still being processed. Retry later.")
    default_code = "idempotency_key_in_flight"


class KeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = _(
        "This Idempotency-Key was already used for a different request. Use a new key."
    )
    default_code = "idempotency_key_reused"


@dataclass
class Replay:
    status: int
    body: object


def fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 over the method, the path and the body (JSON compared by content, not spacing)."""
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.hex()
    digest = hashlib.sha256()
    for part in (method.upper(), path, canonical):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def claim(*, api_key: ApiKey, key: str, fingerprint: str) -> IdempotencyRecord | Replay:
    """Claim ``key`` for this request, or say why not (raises 409/422, or a Replay)."""
    now = timezone.now()
    for _attempt in range(2):
        record_id = _insert_unless_claimed(api_key.pk, key, fingerprint, now)
        if record_id is not None:
            record = IdempotencyRecord(
                pk=record_id, api_key=api_key, key=key, fingerprint=fingerprint, created_at=now
            )
            record._state.adding = False
            return record
        existing = IdempotencyRecord.objects.filter(api_key=api_key, key=key).first()
        if existing is None:
            continue  # released in between: claim again
        if existing.created_at < now - KEPT_FOR:
            # Past its 30 days but not purged yet: forgotten, as if purged.
            IdempotencyRecord.objects.filter(pk=existing.pk, created_at__lt=now - KEPT_FOR).delete()
            continue
        if existing.fingerprint != fingerprint:
            raise KeyReused()
        if existing.completed_at is None:
            raise KeyInFlight()
        return Replay(status=existing.status, body=existing.response)
    raise KeyInFlight()


# Hand-written, as the two statements every keyed POST runs: the ORM took longer to build
# them than the database takes to run them. ON CONFLICT instead of catching the unique
# violation: a taken key is an answer, not an error, so no savepoint is needed inside a
# transaction either. A claim still being inserted by another request is waited for.
_CLAIM = (
    "INSERT INTO api_idempotencyrecord (api_key_id, key, fingerprint, created_at) "
    "VALUES (%s, %s, %s, %s) ON CONFLICT (api_key_id, key) DO NOTHING RETURNING id"
)
_COMPLETE = (
    "UPDATE api_idempotencyrecord SET status = %s, response = %s, completed_at = %s WHERE id = %s"
)


def _insert_unless_claimed(api_key_id: int, key: str, fingerprint: str, now) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, [api_key_id, key, fingerprint, to_db(now)])
        row = cursor.fetchone()
    return row[0] if row else None


def complete(record: IdempotencyRecord, *, status: int, body) -> None:
    """Store the answer. Call inside the transaction of the work it answers."""
    response = IdempotencyRecord._meta.get_field("response").get_db_prep_save(body, connection)
    with connection.cursor() as cursor:
        cursor.execute(_COMPLETE, [status, response, to_db(timezone.now()), record.pk])


def release(record: IdempotencyRecord) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk, completed_at__isnull=True).delete()


def purge_expired(*, now: dt.datetime | None = None) -> int:
    """Forget keys older than 30 days. Returns how many went."""
    cutoff = (now or timezone.now()) - KEPT_FOR
    deleted, _by_model = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
