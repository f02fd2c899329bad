"""Thin Celery tasks: each calls one service."""

from celery import shared_task

from . import kpis, services


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=3)
def compute_segments() -> dict:
    """The nightly run: segments and system tags, then the day's KPI snapshots."""
    run = services.compute_segments()
    rows = kpis.take_snapshots()
    return {
        "members": run.members,
        "buyers": run.buyers,
        "tag_changes": run.tag_changes,
        "snapshot_rows": rows,
    }
