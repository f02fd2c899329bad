"""Thin Celery tasks over the import services, and their dispatch.

The job row is the durable record of the work: ``dispatch`` sends it to the broker after
the commit, and a broker that is away is only logged (the operation has succeeded; the
sweeper sends the job when the broker is back). The services claim the job, so a task
delivered twice does nothing the second time."""

import datetime as dt
import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from . import leases, services, staging
from .models import ImportJob

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def check_import(job_id: int) -> str:
    return services.check(job_id).status


@shared_task(acks_late=True)
def write_import(job_id: int) -> str:
    return services.write(job_id).status


def dispatch(job_id: int) -> bool:
    """Send the job's next step to a worker; never raises (called after a commit)."""
    waiting = ImportJob.objects.filter(pk=job_id, claimed_by="").values_list("status", flat=True)
    task = {ImportJob.Status.QUEUED: check_import, ImportJob.Status.WRITING: write_import}.get(
        waiting.first()
    )
    if task is None:
        return False
    try:
        ImportJob.objects.filter(pk=job_id).update(dispatched_at=timezone.now())
        task.delay(job_id)
    except Exception:
        # Broker away (or, eager, the work itself failed and recorded it on the job).
        logger.warning(
            "import %s: not dispatched; the sweeper sends it later", job_id, exc_info=True
        )
        ImportJob.objects.filter(pk=job_id, claimed_by="").update(dispatched_at=None)
        return False
    return True


def dispatch_after_commit(job_id: int) -> None:
    transaction.on_commit(lambda: dispatch(job_id))


@shared_task
def sweep_import_jobs() -> int:
    """Release claims whose lease ran out and dispatch the jobs nobody holds."""
    return sum(dispatch(job_id) for job_id in leases.sweep())


@shared_task
def purge_old_imports(days: int = 7) -> int:
    """Staging rows and stored files of imports finished more than ``days`` ago."""
    old = ImportJob.objects.filter(finished_at__lt=timezone.now() - dt.timedelta(days=days))
    count = 0
    for job in old.exclude(file=""):
        staging.clear(job)
        job.file.delete(save=True)
        count += 1
    return count
