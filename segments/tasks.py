"""Thin Celery tasks: each calls one service."""

from celery import shared_task

from . import services


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=3)
def compute_segments() -> dict:
    run = services.compute_segments()
    return {"members": run.members, "buyers": run.buyers, "tag_changes": run.tag_changes}
