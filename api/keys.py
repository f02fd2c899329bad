"""API keys: made with a secret shown once, found by prefix, checked against a hash.

The secret is 32 random bytes (256 bits), so the hash only has to be one-way, not slow:
no one can guess such a secret whatever the hash costs. A password hasher (PBKDF2,
hundreds of milliseconds by design) would be paid on every API request instead. So the
stored value is SHA-256 of the secret, compared in constant time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.services import record_audit
from membership.sqlrows import columns, instance

from .models import ApiKey, Scope

KEY_PREFIX = "vip_"
# Last use is written at most this often per key, so reading keys does not mean writing rows.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


@dataclass
class NewKey:
    api_key: ApiKey
    plaintext: str  # shown to the operator once, never stored


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(*, name: str, scopes: list[str], actor) -> NewKey:
    """Make a key for one integration. The plaintext is returned once and never kept. Audited."""
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        raise ValidationError({"scopes": _("Unknown scopes: %(s)s") % {"s": ", ".join(unknown)}})
    if not scopes:
        raise ValidationError({"scopes": _("Choose at least one scope.")})
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        api_key = ApiKey(
            name=name.strip(),
            prefix=prefix,
            secret_hash=hash_secret(secret),
            scopes=sorted(set(scopes)),
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        api_key.full_clean()
        api_key.save()
        record_audit(
            actor=actor,
            action="api_key.add",
            obj=api_key,
            after={"name": api_key.name, "prefix": prefix, "scopes": api_key.scopes},
        )
    return NewKey(api_key=api_key, plaintext=f"{KEY_PREFIX}{prefix}_{secret}")


def revoke_api_key(*, api_key_id: int, actor) -> ApiKey:
    """Revoke a key: it answers 401 from the next request. Revoking twice changes nothing."""
    with transaction.atomic():
        api_key = ApiKey.objects.select_for_update().get(pk=api_key_id)
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
            record_audit(actor=actor, action="api_key.revoke", obj=api_key)
    return api_key


def find_api_key(plaintext: str) -> ApiKey | None:
    """The active key this plaintext opens, or None. Records the use (to the minute)."""
    if not plaintext.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = plaintext[len(KEY_PREFIX) :].partition("_")
    if not sep or not secret:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_ACTIVE_KEY, [prefix])
        row = cursor.fetchone()
    api_key = instance(ApiKey, row) if row else None
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, hash_secret(secret)):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or api_key.last_used_at < now - LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


# The active key with a prefix (unique), hand-written: every API request runs it, and the
# ORM took longer to build this SELECT than the database takes to answer it.
_ACTIVE_KEY = f"SELECT {columns(ApiKey)} FROM api_apikey WHERE prefix = %s AND revoked_at IS NULL"
