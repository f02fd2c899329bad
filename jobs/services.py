"""Starting, running and resuming batch jobs; the rules every worker follows.

A job is started once per kind at a time (a partial unique constraint): starting a
kind whose last job never finished resumes that job, so a run killed half-way and
started again ends as one clean run does. Its chunks are run by whoever gets them (a
worker, the command inline); each locks its row, skips it when done, and commits the
work with its done flag. The last chunk of a step moves the job to the next step.

Nothing here sends tasks: ``jobs.tasks`` dispatches what these functions return.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Min, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from membership.models import Member

from .kinds import kind_of
from .models import Job, JobChunk

SUPERSEDED = "Superseded by a newer run of the same kind."


def id_ranges(size: int) -> list[tuple[int, int]]:
    """Member id ranges of ``size`` ids, both ends included, covering every member now."""
    bounds = Member.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    if bounds["lo"] is None:
        return []
    return [
        (lo, min(lo + size - 1, bounds["hi"])) for lo in range(bounds["lo"], bounds["hi"] + 1, size)
    ]


def unfinished(kind: str) -> Job | None:
    return Job.objects.filter(kind=kind, finished_at__isnull=True).first()


def start(
    *,
    kind: str,
    now: dt.datetime | None = None,
    chunk: int | None = None,
    dispatched: bool = False,
    fresh: bool = False,
) -> Job:
    """The unfinished job of ``kind`` if there is one (to resume), else a new one.

    A new job fixes its moment (``now``) and its chunks for every step at once, so a
    resumed run works on the same ranges as of the same moment. ``fresh`` (the programme
    changed: chunks already done are out of date) ends an unfinished job as superseded
    and starts a new one.
    """
    if fresh:
        Job.objects.filter(kind=kind, finished_at__isnull=True).update(
            status=Job.Status.FAILED, finished_at=timezone.now(), error=SUPERSEDED
        )
    elif job := unfinished(kind):
        return job
    now = now or timezone.now()
    definition = kind_of(kind)
    ranges = id_ranges(chunk or settings.JOBS_CHUNK)
    try:
        with transaction.atomic():
            params = {"now": now.isoformat()}
            if definition.begin:
                params.update(definition.begin(now=now))
            job = Job.objects.create(
                kind=kind, params=params, started_at=timezone.now(), dispatched=dispatched
            )
            chunks = [
                JobChunk(job=job, step=n, id_from=lo, id_to=hi)
                for n, step in enumerate(definition.steps)
                for lo, hi in (ranges if step.chunked else [(0, 0)])
            ]
            JobChunk.objects.bulk_create(chunks)
            job.chunks_total = len(chunks)
            _enter_step(job, 0)
            job.save()
    except IntegrityError:
        # Another starter made the job of this kind between our look and our insert.
        job = unfinished(kind)
        if job is None:
            raise
    return job


def _enter_step(job: Job, step: int) -> None:
    job.step = step
    prepare = kind_of(job.kind).steps[step].prepare
    if prepare:
        job.params = {**job.params, **prepare(params=job.params)}


def pending_chunks(job_id: int) -> list[int]:
    """The current step's chunks not yet done, by id."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.status != Job.Status.RUNNING:
        return []
    return list(
        job.chunks.filter(step=job.step, done_at__isnull=True)
        .order_by("id_from")
        .values_list("pk", flat=True)
    )


def run_chunk(chunk_id: int) -> bool:
    """Do one chunk unless it is done; True when this call did it.

    The chunk's row stays locked while it runs, so a second copy (a redelivered task, a
    resumed run) waits and then finds it done. A failure rolls the work back, counts the
    attempt with its error (kept after a later success, for the admin) and raises, for
    the task to retry.
    """
    chunk = JobChunk.objects.select_related("job").filter(pk=chunk_id).first()
    if chunk is None:
        return False  # its job was deleted: nothing is owed (a retry would only repeat this)
    try:
        if not kind_of(chunk.job.kind).steps[chunk.step].atomic:
            return _run_outside_transaction(chunk)
        with transaction.atomic():
            # Only the chunk's row is locked (OF self): locking the job's row too, as a
            # plain FOR UPDATE over the join does, made every chunk of a job wait for the
            # one before it, and two workers ran no faster than one.
            chunk = (
                JobChunk.objects.select_for_update(of=("self",))
                .select_related("job")
                .get(pk=chunk_id)
            )
            job = chunk.job
            if chunk.done_at is not None or job.status != Job.Status.RUNNING:
                return False
            step = kind_of(job.kind).steps[chunk.step]
            counts = step.run(params=job.params, id_from=chunk.id_from, id_to=chunk.id_to)
            done = _mark_done(chunk, counts)
        _count_progress(chunk.job_id)
        return done
    except Exception as exc:
        JobChunk.objects.filter(pk=chunk_id).update(
            attempts=F("attempts") + 1, error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise


def _mark_done(chunk: JobChunk, counts: dict) -> bool:
    marked = JobChunk.objects.filter(pk=chunk.pk, done_at__isnull=True).update(
        done_at=timezone.now(), result=counts, attempts=F("attempts") + 1
    )
    return bool(marked)


def _count_progress(job_id: int) -> None:
    """The job's progress for the admin, counted from its chunks once a chunk has committed.

    Not bumped inside the chunk's transaction: that would hold the job row's lock until
    the chunk commits, and the workers' chunks would commit one after another. Each count
    sees every chunk committed before it began, and never lowers the figure, so the last
    one leaves it right.
    """
    done = (
        JobChunk.objects.filter(job_id=job_id, done_at__isnull=False)
        .order_by()
        .values("job_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    Job.objects.filter(pk=job_id).update(
        chunks_done=Greatest(F("chunks_done"), Coalesce(Subquery(done), 0))
    )


def _run_outside_transaction(chunk: JobChunk) -> bool:
    """A step that claims its own work (e-mails): run, then mark done once."""
    job = chunk.job
    if chunk.done_at is not None or job.status != Job.Status.RUNNING:
        return False
    counts = (
        kind_of(job.kind)
        .steps[chunk.step]
        .run(params=job.params, id_from=chunk.id_from, id_to=chunk.id_to)
    )
    with transaction.atomic():
        done = _mark_done(chunk, counts)
    _count_progress(job.pk)
    return done


def advance(job_id: int) -> list[int]:
    """When the job's current step is done: the next step's chunks, or the job finished.

    Returns the chunks to run now (none while the step still has some running). The job
    row is locked, so when two chunks finish together only one moves the job on.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != Job.Status.RUNNING:
            return []
        if job.chunks.filter(step=job.step, done_at__isnull=True).exists():
            return []
        steps = kind_of(job.kind).steps
        if job.step + 1 >= len(steps):
            totals = Counter()
            for result in job.chunks.values_list("result", flat=True):
                totals.update({k: v for k, v in result.items() if isinstance(v, int)})
            job.result = dict(totals)
            job.status = Job.Status.DONE
            job.finished_at = timezone.now()
            job.save()
            return []
        _enter_step(job, job.step + 1)
        job.save()
    return pending_chunks(job_id)


def fail(chunk_id: int, error: str) -> None:
    """A chunk gave up after its retries: the job stops, failed, with the reason."""
    job_id = JobChunk.objects.filter(pk=chunk_id).values_list("job_id", flat=True).first()
    Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(
        status=Job.Status.FAILED, finished_at=timezone.now(), error=error[:2000]
    )


def run_inline(job: Job) -> Job:
    """Run every remaining chunk of ``job`` here, step after step, until it is done."""
    chunks = pending_chunks(job.pk)
    while True:
        for chunk_id in chunks:
            run_chunk(chunk_id)
        job.refresh_from_db()
        if job.status != Job.Status.RUNNING:
            return job
        chunks = advance(job.pk)
        job.refresh_from_db()
        if job.status != Job.Status.RUNNING:
            return job


def run(*, kind: str, now: dt.datetime | None = None, chunk: int | None = None) -> Job:
    """Start (or resume) a job of ``kind`` and run it to the end in this process."""
    return run_inline(start(kind=kind, now=now, chunk=chunk))
