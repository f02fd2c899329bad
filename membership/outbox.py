"""The outbox: follow-ups owed after a commit, never lost to a broker that is away.

A service calls ``enqueue(task_name, **kwargs)`` inside its transaction, so the row
exists exactly when the change does (healthchecks' Flip rows claimed by
``sendalerts`` are the model). After the commit the row is sent; a broker error is
logged, never raised, so nothing reports a failure for a change that was saved. The
beat job ``sweep_outbox`` sends every row that is not done again, once a minute,
until a worker has run it.

Tasks are named, never imported: what goes to the broker is the task
``membership.tasks.run_outbox_message`` with the row's id; the worker claims the row,
runs the named task in its own process and marks the row done. A row may be sent
twice (a resend while the first copy still waits in the queue) but runs once at a
time and never again once done, so every follow-up must be idempotent. With
``CELERY_TASK_ALWAYS_EAGER`` (no broker) the run happens inline after the commit.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from functools import partial

from celery import current_app
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from membership.models import OutboxMessage
from membership.sqltime import to_db

logger = logging.getLogger(__name__)

RUNNER = "membership.tasks.run_outbox_message"
# A sent row with no finished run after this is sent again (the message was lost,
# or the run failed and was recorded).
RESEND_AFTER = dt.timedelta(minutes=5)
# A run held longer than this died with its worker; the row is freed and sent again.
RUN_TIMEOUT = dt.timedelta(hours=1)
KEEP_DONE = dt.timedelta(days=7)
BATCH = 500


def enqueue(task_name: str, **kwargs) -> OutboxMessage:
    """Owe ``task_name(**kwargs)`` once the current transaction commits.

    Written in the caller's transaction (or its own when there is none): a rollback
    leaves no row. An identical follow-up that no worker has started yet is reused
    rather than repeated, since one run after every change it owes covers them all;
    it is locked until this commit, so a worker about to start it waits and then sees
    this change. A row locked by another open transaction is skipped, never waited for.
    """
    # No savepoint in the caller's transaction (two round trips on every change that owes
    # a follow-up): nothing here is caught, and a failure rolls the caller back as it must.
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            message = _reuse_or_create(task_name, kwargs)
        else:
            message = (
                OutboxMessage.objects.select_for_update(skip_locked=True)
                .filter(
                    task_name=task_name,
                    kwargs=kwargs,
                    started_at__isnull=True,
                    done_at__isnull=True,
                )
                .order_by("id")
                .first()
            )
            if message is None:
                message = OutboxMessage.objects.create(
                    task_name=task_name, kwargs=kwargs, created_at=timezone.now()
                )
        if message.dispatched_at is None and not message.last_error:
            transaction.on_commit(partial(dispatch, message_id=message.pk))
        # Else a reused row already went to the broker (its message still waits, or the
        # sweeper sends it again) or its send failed (the sweeper's): ``dispatch`` would
        # claim nothing, and its UPDATE cost a transaction of its own after every commit.
    return message


# ``enqueue``'s look for a row to reuse and its INSERT of a new one, in one statement
# (PostgreSQL): every order that moves a tier owes its e-mail, and the ORM took longer to
# build the two than the database took to run them.
_REUSE_OR_CREATE = (
    "WITH found AS (SELECT id, created_at, dispatched_at, last_error "
    "FROM membership_outboxmessage WHERE task_name = %(task)s AND kwargs = %(kwargs)s "
    "AND started_at IS NULL AND done_at IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED), "
    "made AS (INSERT INTO membership_outboxmessage (task_name, kwargs, created_at, attempts, "
    "last_error) SELECT %(task)s, %(kwargs)s, %(now)s, 0, '' "
    "WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id, created_at) "
    "SELECT id, created_at, dispatched_at, last_error FROM found "
    "UNION ALL SELECT id, created_at, NULL, '' FROM made"
)


def _reuse_or_create(task_name: str, kwargs: dict) -> OutboxMessage:
    stored = OutboxMessage._meta.get_field("kwargs").get_db_prep_save(kwargs, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            _REUSE_OR_CREATE, {"task": task_name, "kwargs": stored, "now": timezone.now()}
        )
        pk, created_at, dispatched_at, last_error = cursor.fetchone()
    message = OutboxMessage(
        pk=pk,
        task_name=task_name,
        kwargs=kwargs,
        created_at=created_at,
        dispatched_at=dispatched_at,
        last_error=last_error,
    )
    message._state.adding = False
    return message


def dispatch(*, message_id: int) -> bool:
    """Send one row if nobody has tried to yet; a broker error is logged and leaves the
    row for the sweeper, never raised after the commit.

    A row whose send failed is left to the sweeper too, so a transaction that owes the
    same follow-up many times (a tier e-mail per sub-account) waits at most once for a
    broker that is away.
    """
    return _send(_claim_untried(message_id, now=timezone.now())) == 1


def _claim_untried(message_id: int, *, now: dt.datetime) -> list[int]:
    """Mark one row sent now if nobody has tried to send it: ``[message_id]``, or ``[]``.

    One conditional UPDATE, hand-written, in place of ``_claim``'s transaction of four
    statements (every change that owes a follow-up runs it after its commit). A row
    another open transaction holds (one reusing it) is skipped, never waited for.
    """
    untried = (
        "SELECT id FROM membership_outboxmessage WHERE id = %s AND dispatched_at IS NULL "
        "AND last_error = '' AND started_at IS NULL AND done_at IS NULL"
    )
    if connection.features.has_select_for_update_skip_locked:
        untried += " FOR UPDATE SKIP LOCKED"
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE membership_outboxmessage SET dispatched_at = %s "
            f"WHERE id IN ({untried}) RETURNING id",
            [to_db(now), message_id],
        )
        return [row[0] for row in cursor.fetchall()]


def sweep(*, now: dt.datetime | None = None) -> int:
    """Send again every row not done; returns how many went to the broker.

    A row is due when it was never sent (the broker was away) or was sent
    ``RESEND_AFTER`` ago without a finished run; a run held past ``RUN_TIMEOUT`` is
    freed first. Rows are claimed with SELECT … FOR UPDATE SKIP LOCKED, so two
    sweepers never send the same row. Stops at the first broker error: the rest wait
    for the next sweep. Done rows older than ``KEEP_DONE`` are deleted.
    """
    now = now or timezone.now()
    OutboxMessage.objects.filter(done_at__lt=now - KEEP_DONE).delete()
    OutboxMessage.objects.filter(done_at__isnull=True, started_at__lt=now - RUN_TIMEOUT).update(
        started_at=None, last_error="The worker running it stopped answering."
    )
    sent = 0
    while rows := _claim(OutboxMessage.objects.all(), now=now):
        handed = _send(rows)
        sent += handed
        if handed < len(rows):
            break
    return sent


def run(*, message_id: int) -> bool:
    """Run one row's task here, at most once at a time; True when it finished.

    The row is claimed with a conditional UPDATE: a second copy of the message finds
    it started or done and does nothing. A task that raises leaves the row not done,
    with the error, for the sweeper to send again.
    """
    claimed = OutboxMessage.objects.filter(
        pk=message_id, started_at__isnull=True, done_at__isnull=True
    ).update(started_at=timezone.now(), attempts=F("attempts") + 1)
    if not claimed:
        return False
    message = OutboxMessage.objects.get(pk=message_id)
    try:
        _task(message.task_name)(**message.kwargs)
    except Exception as exc:
        logger.exception("Follow-up %s failed; the outbox sweeper sends it again", message)
        OutboxMessage.objects.filter(pk=message_id).update(
            started_at=None, last_error=_describe(exc)
        )
        return False
    OutboxMessage.objects.filter(pk=message_id).update(done_at=timezone.now(), last_error="")
    return True


def _claim(rows: QuerySet[OutboxMessage], *, now: dt.datetime) -> list[int]:
    """Mark up to BATCH due rows as sent now and return their ids (skipping locked ones)."""
    due = rows.filter(done_at__isnull=True, started_at__isnull=True).filter(
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - RESEND_AFTER)
    )
    with transaction.atomic():
        ids = list(
            due.select_for_update(skip_locked=True)
            .order_by("id")
            .values_list("pk", flat=True)[:BATCH]
        )
        OutboxMessage.objects.filter(pk__in=ids).update(dispatched_at=now)
    return ids


def _send(ids: Iterable[int]) -> int:
    """Hand the claimed rows to the broker in order; on an error, unclaim the rest."""
    ids = list(ids)
    for i, message_id in enumerate(ids):
        try:
            _task(RUNNER).apply_async(kwargs={"message_id": message_id})
        except Exception as exc:
            # The change that owes this is committed: log, keep the row, never raise.
            logger.warning(
                "Could not send follow-up #%s (%s); the outbox sweeper sends it again",
                message_id,
                _describe(exc),
            )
            OutboxMessage.objects.filter(pk__in=ids[i:]).update(
                dispatched_at=None, last_error=_describe(exc)
            )
            return i
    return len(ids)


def _task(name: str):
    """The task ``name`` from Celery's registry, loading every app's tasks module first
    if it is not there yet: a worker loads them at start-up, the web process only as it
    needs them (having one app's tasks loaded says nothing of another's)."""
    if name not in current_app.tasks:
        current_app.loader.import_default_modules()
    return current_app.tasks[name]


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
