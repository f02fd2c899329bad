"""Thin Celery tasks over the import services; the services claim the job, so a
redelivered task does nothing twice."""

import datetime as dt

from celery import shared_task
from django.utils import timezone

from . import services, staging
from .models import ImportJob


@shared_task(acks_late=True)
def check_import(job_id: int) -> str:
    return services.check(job_id).status


@shared_task(acks_late=True)
def write_import(job_id: int) -> str:
    return services.write(job_id).status


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
