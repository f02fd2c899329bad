"""Claims on import jobs: a lease a worker holds and renews, and the sweeper.

A check or write is claimed with one conditional UPDATE that takes a lease
(``claimed_by``, ``lease_until``) and counts the attempt. The worker renews the lease
while it works; every write it makes to the job needs the claim still held, so a worker
whose job was discarded, or taken over after its lease ran out, stops (``LeaseLost``).
The sweeper releases an expired claim for another attempt, or fails the job after
``IMPORT_MAX_ATTEMPTS``, and names the jobs to dispatch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import uuid

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import ImportJob

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The job is no longer this worker's: discarded, or claimed again after its lease ran out."""


def _lease() -> dt.timedelta:
    return dt.timedelta(seconds=settings.IMPORT_LEASE_SECONDS)


def claim(job_id: int, *, status: str, claimed: str) -> str | None:
    """Take the job with a lease; the token names this claim, or None if another has it."""
    token = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    waiting = ImportJob.objects.filter(pk=job_id, status=status, claimed_by="")
    taken = waiting.update(
        status=claimed,
        claimed_by=token,
        lease_until=timezone.now() + _lease(),
        attempts=F("attempts") + 1,
        message="",
    )
    return token if taken else None


def renew(job_id: int, token: str, **fields) -> None:
    """Extend the lease (and save progress); LeaseLost if the job is no longer ours."""
    held = ImportJob.objects.filter(pk=job_id, claimed_by=token)
    if not held.update(lease_until=timezone.now() + _lease(), **fields):
        raise LeaseLost


def finish(job_id: int, token: str, **fields) -> None:
    held = ImportJob.objects.filter(pk=job_id, claimed_by=token)
    if not held.update(claimed_by="", lease_until=None, **fields):
        raise LeaseLost


@contextlib.contextmanager
def heartbeat(job_id: int, token: str):
    """Renew the lease from a thread (its own connection) while a long transaction runs.

    On PostgreSQL only: the renewal must be seen by the sweeper while the work is still
    uncommitted. SQLite has one writer at a time, so nobody can take the job meanwhile.
    """
    if connection.vendor != "postgresql":
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        from django.db import connection as own

        try:
            while not stop.wait(settings.IMPORT_LEASE_SECONDS / 3):
                try:
                    renew(job_id, token)
                except LeaseLost:
                    return
                except DatabaseError:
                    logger.warning("import %s: lease renewal failed", job_id, exc_info=True)
                    own.close()
        finally:
            own.close()

    thread = threading.Thread(target=beat, name=f"import-{job_id}-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def release_or_fail(job_id: int, token: str, reason: str) -> None:
    """A claim that stopped: back to its queue for another attempt, or failed after the last."""
    job = ImportJob.objects.filter(pk=job_id, claimed_by=token).first()
    if job is None:
        return
    most = settings.IMPORT_MAX_ATTEMPTS
    held = ImportJob.objects.filter(pk=job_id, claimed_by=token)
    if job.attempts >= most:
        held.update(
            status=ImportJob.Status.FAILED,
            claimed_by="",
            lease_until=None,
            finished_at=timezone.now(),
            message=_("Stopped after %(attempts)s attempts: %(reason)s. Nothing was written.")
            % {"attempts": job.attempts, "reason": reason},
        )
        return
    back = ImportJob.Status.QUEUED if job.status == ImportJob.Status.CHECKING else job.status
    held.update(
        status=back,
        claimed_by="",
        lease_until=None,
        dispatched_at=None,
        message=_("Attempt %(attempt)s of %(most)s stopped: %(reason)s. It is tried again.")
        % {"attempt": job.attempts, "most": most, "reason": reason},
    )


def replace_dead_connection() -> None:
    """A connection the database dropped is closed, so the next query opens a new one."""
    if not connection.in_atomic_block and (
        connection.connection is None or not connection.is_usable()
    ):
        connection.close()


def connection_lost(job_id: int, token: str, exc: Exception) -> None:
    """Record a dropped connection on a new one (the old one is dead), never raising."""
    logger.warning("import %s: database connection lost", job_id, exc_info=True)
    try:
        replace_dead_connection()
        release_or_fail(
            job_id, token, _("the database connection was lost (%(error)s)") % {"error": exc}
        )
    except DatabaseError:
        # The database is still away: the lease runs out and the sweeper takes it from there.
        logger.warning("import %s: could not record the lost connection", job_id, exc_info=True)


def sweep(*, now: dt.datetime | None = None, job_id: int | None = None) -> list[int]:
    """Release (or fail) every claim whose lease ran out; return the jobs to dispatch:
    queued or confirmed work nobody holds that was never dispatched, or long ago.
    ``job_id``: that job only (its page does this, so a job is not stuck without beat)."""
    now = now or timezone.now()
    jobs = ImportJob.objects.filter(pk=job_id) if job_id else ImportJob.objects.all()
    expired = (
        jobs.filter(
            status__in=[ImportJob.Status.CHECKING, ImportJob.Status.WRITING],
            lease_until__lt=now,
        )
        .exclude(claimed_by="")
        .values_list("pk", "claimed_by")
    )
    for job_id, token in expired:
        release_or_fail(job_id, token, _("the worker stopped before its lease ran out"))
    waiting = Q(status=ImportJob.Status.QUEUED) | Q(status=ImportJob.Status.WRITING, claimed_by="")
    stale = Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - _lease())
    return list(jobs.filter(waiting & stale).values_list("pk", flat=True))
