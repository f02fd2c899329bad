"""Thin Celery tasks over the job services, and the dispatch of a step's chunks.

A step's chunks go out as one Celery group; the last chunk to finish starts the next
step (``services.advance``), which does what a chord's callback would without needing
a result backend. A chunk that raises is retried with backoff; after its last retry
the job is marked failed. A worker killed mid-chunk leaves its message unacknowledged
(``acks_late``) and its work rolled back: the broker delivers it again, and the next
start of the kind (beat) dispatches whatever is still pending.
"""

import logging

from celery import Task, group, shared_task
from django.conf import settings

from . import services

logger = logging.getLogger(__name__)


class ChunkTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        services.fail(args[0] if args else kwargs["chunk_id"], f"{type(exc).__name__}: {exc}")


@shared_task(
    base=ChunkTask,
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def run_job_chunk(chunk_id: int, job_id: int) -> bool:
    done = services.run_chunk(chunk_id)
    dispatch_chunks(job_id, services.advance(job_id))
    return done


def dispatch_chunks(job_id: int, chunk_ids: list[int]) -> None:
    if chunk_ids:
        group(
            run_job_chunk.si(chunk_id, job_id).set(queue=settings.JOBS_QUEUE)
            for chunk_id in chunk_ids
        ).apply_async()


def dispatch(job_id: int) -> None:
    """Send the job's pending chunks to the workers (or, when none is pending, move on)."""
    dispatch_chunks(job_id, services.pending_chunks(job_id) or services.advance(job_id))


@shared_task
def start_job(kind: str, fresh: bool = False) -> int:
    """Beat's entry: start a job of ``kind`` (or resume the unfinished one) on the workers."""
    job = services.start(kind=kind, dispatched=True, fresh=fresh)
    dispatch(job.pk)
    return job.pk
