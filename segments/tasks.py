"""Thin Celery tasks: each calls one service."""

from celery import shared_task

from jobs.tasks import start_job


@shared_task
def compute_segments() -> int:
    """The nightly run as a batch job: segments and system tags, then the KPI snapshots."""
    return start_job("segments")
