"""The audit log: every operator action, with who, when, what, before, after and why."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import models
from django.forms.models import model_to_dict
from django.utils import timezone

from membership.models import AuditEntry


def snapshot(instance: models.Model, fields: list[str] | None = None) -> dict:
    """A JSON-safe picture of a model instance, for the before/after columns."""
    data = model_to_dict(instance, fields=fields)
    return {key: _jsonable(value) for key, value in data.items()}


def _jsonable(value):
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, list | tuple | set):
        return sorted(_jsonable(v) for v in value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def record_audit(
    *,
    actor,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> AuditEntry:
    """Append one audit entry. Call inside the transaction of the change it records.

    ``action`` is ``<subject>.<verb>`` (``member.adjust_tier``); a new one gets its label in
    ``membership.audit_display.ACTION_LABELS`` (a test holds the code to that registry).
    ``before``/``after`` hold field names and stored values (ids, ISO times): the admin
    shows them as names and Asia/Taipei times.
    """
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:200]
    return AuditEntry.objects.create(
        **_by(actor),
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        before=before,
        after=after,
        reason=reason,
        created_at=timezone.now(),
    )


@dataclass(frozen=True)
class Audited:
    """One object's change in ``record_audits``."""

    object_id: str
    object_repr: str
    before: dict | None
    after: dict | None


def record_audits(
    *,
    actor,
    action: str,
    object_type: str,
    changes: Iterable[Audited],
    reason: str = "",
    batch_size: int = 2000,
) -> int:
    """``record_audit`` for many objects of one type at once, set-based: one entry each.

    Call inside the transaction of the change it records. Returns how many were written.
    """
    now = timezone.now()
    return len(
        AuditEntry.objects.bulk_create(
            [
                AuditEntry(
                    **_by(actor),
                    action=action,
                    object_type=object_type,
                    object_id=change.object_id,
                    object_repr=change.object_repr[:200],
                    before=change.before,
                    after=change.after,
                    reason=reason,
                    created_at=now,
                )
                for change in changes
            ],
            batch_size=batch_size,
        )
    )


def _by(actor) -> dict:
    """Who acted: the staff user, or "system" for jobs and members."""
    return {
        "actor": actor if getattr(actor, "pk", None) else None,
        "actor_name": getattr(actor, "username", "") or "system",
    }
