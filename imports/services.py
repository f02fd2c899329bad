"""The life of an import: upload → (encoding confirmed) → check → confirm → write → done.

Check and write run in Celery tasks (eager where no broker runs). The job row is the
durable record of the work to do: the pages and commands dispatch it after the commit,
and the sweeper dispatches it again when the broker was away. Each step claims the job
with a conditional UPDATE that takes a lease (``claimed_by``, ``lease_until``); the
worker renews the lease while it works, and a lease that runs out (a killed worker, a
lost connection) is released by the sweeper for another attempt, or the job fails after
``IMPORT_MAX_ATTEMPTS``. A task delivered twice does nothing the second time; a write is
one transaction whose last statement needs the claim still held, so it happens once.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.models import Cause, TierHistory
from membership.services import recompute_members, record_audit

from . import leases, members, orders, staging
from .models import ImportJob, Problem
from .reading import (
    ENCODINGS,
    GUESSED,
    cell_problem,
    detect_encoding,
    estimate_rows,
    is_xlsx,
    match_columns,
    rows,
    sample_rows,
    shown,
)

CHUNK = 5000
RECOMPUTE_BATCH = 50_000
# What reading a file that is not a CSV or a workbook raises (openpyxl's are ValueErrors).
UNREADABLE = (UnicodeDecodeError, ValueError, KeyError, OSError, zipfile.BadZipFile, csv.Error)
# What a dropped database connection raises: the job is tried again on a new connection.
CONNECTION_LOST = (OperationalError, InterfaceError)
Progress = Callable[[ImportJob], None]


@dataclass(frozen=True)
class Spec:
    columns: dict[str, list[str]]
    required: tuple[str, ...]
    rows: type
    permission: str
    labels: dict
    limits: dict[str, int]


SPECS = {
    ImportJob.Kind.MEMBERS: Spec(
        members.COLUMNS,
        members.REQUIRED,
        members.MemberRows,
        "imports.import_members",
        members.LABELS,
        members.LIMITS,
    ),
    ImportJob.Kind.ORDERS: Spec(
        orders.COLUMNS,
        orders.REQUIRED,
        orders.OrderRows,
        "imports.import_orders",
        orders.LABELS,
        orders.LIMITS,
    ),
}


def can_import(user, kind: str) -> bool:
    return user.has_perm(SPECS[kind].permission)


def check_upload_size(size: int) -> None:
    """Refuse a file over ``IMPORT_MAX_UPLOAD_MB``, saying how big it is and what is allowed."""
    limit = settings.IMPORT_MAX_UPLOAD_MB
    if size > limit * 1024 * 1024:
        raise ValidationError(
            _(
                "The file is %(size)s MB; an import takes at most %(limit)s MB. "
                "Split it into smaller files."
            )
            % {"size": f"{size / 1024 / 1024:,.1f}", "limit": limit}
        )


def create_job(
    *, kind: str, file, filename: str, actor, encoding: str = "", allow_new_tags: bool = False
) -> ImportJob:
    """A new job, queued for its check; or, when its encoding is only a guess, waiting for
    the operator to confirm it (``set_encoding``). Nothing is dispatched here: the caller
    dispatches the job after the commit."""
    if actor is not None and not can_import(actor, kind):
        raise ValidationError(_("You do not have permission to import this kind of file."))
    if encoding and encoding not in ENCODINGS:
        raise ValidationError(_("Unknown encoding: %(encoding)s") % {"encoding": encoding})
    file = file if isinstance(file, File) else File(file)
    check_upload_size(file.size)
    job = ImportJob(
        kind=kind,
        filename=filename[:200],
        encoding=encoding,
        allow_new_tags=allow_new_tags,
        created_by=actor,
    )
    job.file.save(filename[-100:], file, save=False)
    if not encoding:
        with job.file.open("rb") as stored:
            if not is_xlsx(stored):
                job.encoding = detect_encoding(stored)
        if job.encoding in GUESSED:
            job.status = ImportJob.Status.ENCODING
    job.save()
    return job


def encoding_sample(job: ImportJob, encoding: str = "") -> list[list[str]]:
    """The header and first rows of the file as ``encoding`` (else the job's) decodes them."""
    with job.file.open("rb") as file:
        return sample_rows(file, encoding or job.encoding)


def set_encoding(job_id: int, *, encoding: str, actor) -> ImportJob:
    """The operator's choice of encoding for a guessed file; the job is then queued."""
    if encoding not in ENCODINGS:
        raise ValidationError(_("Unknown encoding: %(encoding)s") % {"encoding": encoding})
    job = ImportJob.objects.get(pk=job_id)
    if actor is not None and not can_import(actor, job.kind):
        raise ValidationError(_("You do not have permission to import this kind of file."))
    if not ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.ENCODING).update(
        encoding=encoding, status=ImportJob.Status.QUEUED, dispatched_at=None
    ):
        raise ValidationError(
            _("This import cannot be changed now (%(status)s).")
            % {"status": job.get_status_display()}
        )
    return ImportJob.objects.get(pk=job_id)


def check(job_id: int, progress: Progress | None = None) -> ImportJob:
    """Read the file once: valid rows to staging, bad ones to problems; then cross-row checks.

    Claims the queued job with a lease; a check claimed again starts from the beginning.
    """
    token = leases.claim(job_id, status=ImportJob.Status.QUEUED, claimed=ImportJob.Status.CHECKING)
    if token is None:
        return ImportJob.objects.get(pk=job_id)
    job = ImportJob.objects.get(pk=job_id)
    try:
        staging.clear(job)
        job.problems.all().delete()
        _check(job, token, progress or (lambda job: None))
    except leases.LeaseLost:
        _leave(job_id)
    except CONNECTION_LOST as exc:
        leases.connection_lost(job_id, token, exc)
    except UNREADABLE as exc:
        leases.finish(
            job_id,
            token,
            status=ImportJob.Status.FAILED,
            finished_at=timezone.now(),
            message=_("The file could not be read as CSV or Excel (.xlsx): %(error)s")
            % {"error": exc},
        )
    except Exception as exc:
        # Never leave the job "checking" for ever: the page would refresh without end.
        leases.replace_dead_connection()
        ImportJob.objects.filter(pk=job_id, claimed_by=token).update(
            status=ImportJob.Status.FAILED,
            claimed_by="",
            lease_until=None,
            message=_("The check stopped: %(error)s") % {"error": exc},
        )
        raise
    return ImportJob.objects.get(pk=job_id)


def _leave(job_id: int) -> None:
    """The job was taken from this worker; if it was discarded, its staging goes too."""
    if ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.DISCARDED).exists():
        staging.clear(ImportJob(pk=job_id))


def _check(job: ImportJob, token: str, progress: Progress) -> None:
    spec = SPECS[job.kind]
    with job.file.open("rb") as file:
        job.total_rows = estimate_rows(file)
        if not is_xlsx(file) and not job.encoding:
            job.encoding = detect_encoding(file)
        leases.renew(job.pk, token, total_rows=job.total_rows, encoding=job.encoding)
        reader = rows(file, job.encoding)
        try:
            columns, missing = match_columns(next(reader, []), spec.columns, spec.required)
            if not missing:
                _check_rows(job, token, reader, columns, spec, progress)
        finally:
            reader.close()
    if missing:
        Problem.objects.bulk_create(
            Problem(
                job=job,
                line=1,
                column=key,
                message=_("missing column (one of: %(names)s)")
                % {"names": ", ".join(spec.columns[key])},
            )
            for key in missing
        )
        job.total_rows, job.error_rows = 0, 1
    else:
        checker = spec.rows(job)
        checker.check_across_rows()
        leases.renew(job.pk, token)
        job.error_rows = (
            Problem.objects.filter(job=job).values("line").annotate(n=Count("id")).count()
        )
        job.existing_rows = checker.existing()
    job.status = ImportJob.Status.CHECKED
    job.finished_at = timezone.now()
    job.claimed_by, job.lease_until = "", None
    leases.finish(
        job.pk,
        token,
        status=job.status,
        finished_at=job.finished_at,
        total_rows=job.total_rows,
        rows_done=job.rows_done,
        error_rows=job.error_rows,
        existing_rows=job.existing_rows,
    )
    progress(job)


def _check_rows(job, token: str, reader: Iterator[list[str]], columns, spec, progress) -> None:
    checker = spec.rows(job)
    staged, problems, done, bad = [], [], 0, 0
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        done += 1
        raw = {key: values[i].strip() if i < len(values) else "" for key, i in columns.items()}
        # Every cell is looked at before it is used: control characters, and length.
        errors = [
            (key, reason)
            for key, value in raw.items()
            if (reason := cell_problem(value, spec.limits[key]))
        ]
        objects = []
        if not errors:
            objects, errors = checker.clean(line, raw)
        if errors:
            bad += 1
            problems += [
                Problem(
                    job_id=job.pk,
                    line=line,
                    column=c,
                    value=shown(raw.get(c, "")),
                    message=m[:300],
                )
                for c, m in errors
            ]
        else:
            staged += objects
        if done % CHUNK == 0:
            staging.write(staged, problems)
            staged, problems = [], []
            job.rows_done, job.error_rows = done, bad
            job.total_rows = max(job.total_rows, done)
            leases.renew(job.pk, token, rows_done=done, error_rows=bad, total_rows=job.total_rows)
            progress(job)
    staging.write(staged, problems)
    job.total_rows = job.rows_done = done


def confirm(job_id: int, *, actor, valid_only: bool, notify: bool = False) -> ImportJob:
    """The operator's go-ahead, checked at once; the writing itself is ``write``.

    ``notify``: tiers reached through this import e-mail their members and issue upgrade
    gifts; off by default, so a migration does not greet every member it brings in.
    """
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if actor is not None and not can_import(actor, job.kind):
            raise ValidationError(_("You do not have permission to import this kind of file."))
        if job.status in {ImportJob.Status.WRITING, ImportJob.Status.DONE}:
            return job  # a second click on the same button
        if job.status != ImportJob.Status.CHECKED:
            raise ValidationError(
                _("This import cannot be written now (%(status)s).")
                % {"status": job.get_status_display()}
            )
        if job.error_rows and not valid_only:
            raise ValidationError(
                _(
                    "%(count)s rows have errors: nothing is written. Fix the file, or choose to "
                    "import only the valid rows."
                )
                % {"count": job.error_rows}
            )
        if not job.valid_rows:
            raise ValidationError(_("The file has no valid rows to import."))
        job.status = ImportJob.Status.WRITING
        job.valid_only = valid_only
        job.notify = notify
        job.written_by = actor
        job.claimed_by, job.lease_until, job.dispatched_at = "", None, None
        job.attempts = 0  # the write's own attempts, not the check's
        job.save(
            update_fields=[
                "attempts",
                "status",
                "valid_only",
                "notify",
                "written_by",
                "claimed_by",
                "lease_until",
                "dispatched_at",
            ]
        )
    return job


def write(job_id: int) -> ImportJob:
    """Every valid row in one transaction, then every imported member evaluated set-based.

    The transaction's last statement marks the job done only while this claim holds it,
    so a write whose lease was taken over (or whose job was discarded) rolls back whole.
    """
    token = leases.claim(job_id, status=ImportJob.Status.WRITING, claimed=ImportJob.Status.WRITING)
    if token is None:
        return ImportJob.objects.get(pk=job_id)
    try:
        with leases.heartbeat(job_id, token), transaction.atomic():
            _write(ImportJob.objects.get(pk=job_id), token)
    except leases.LeaseLost:
        # Another claim (or a discard) took the job; this write rolled back whole, and the
        # job's state is the other claim's to report.
        return ImportJob.objects.get(pk=job_id)
    except CONNECTION_LOST as exc:
        leases.connection_lost(job_id, token, exc)
    except Exception as exc:
        leases.replace_dead_connection()
        ImportJob.objects.filter(pk=job_id, claimed_by=token).update(
            status=ImportJob.Status.FAILED,
            claimed_by="",
            lease_until=None,
            message=_("Nothing was written: %(error)s") % {"error": exc},
        )
        raise
    return ImportJob.objects.get(pk=job_id)


def _write(job: ImportJob, token: str) -> None:
    now = timezone.now()
    checker = SPECS[job.kind].rows(job)
    job.created, job.updated = checker.write(now)
    job.skipped = job.error_rows if job.valid_only else 0
    # Bounded batches of ids: memory stays flat however big the file.
    ids = checker.member_ids().order_by("pk").iterator(chunk_size=CHUNK)
    gifts = 0
    for chunk in staging.batched(ids, RECOMPUTE_BATCH):
        result = recompute_members(
            member_ids=chunk,
            cause=Cause.IMPORT,
            actor=job.written_by,
            now=now,
            notify=job.notify,
            issue_gifts=job.notify,
        )
        gifts += result.gifts
    job.gifts_issued = gifts
    job.emails_queued = (
        TierHistory.objects.filter(
            cause=Cause.IMPORT, created_at__gte=now, notified_at__isnull=True
        )
        .exclude(member__email="")
        .count()
        if job.notify
        else 0
    )
    record_audit(
        actor=job.written_by,
        action="member.import" if job.kind == ImportJob.Kind.MEMBERS else "order.import",
        obj=job,
        object_repr=job.filename,
        after={
            "file": job.filename,
            "rows": job.total_rows,
            "created": job.created,
            "updated": job.updated,
            "skipped": job.skipped,
            "notify": job.notify,
            "emails_queued": job.emails_queued,
            "gifts_issued": job.gifts_issued,
        },
    )
    leases.finish(
        job.pk,
        token,
        status=ImportJob.Status.DONE,
        finished_at=timezone.now(),
        rows_done=job.total_rows,
        created=job.created,
        updated=job.updated,
        skipped=job.skipped,
        gifts_issued=job.gifts_issued,
        emails_queued=job.emails_queued,
    )


def discard(job_id: int) -> None:
    """Forget a file in whatever state it is, except written: staging, problems and the
    stored file go. A worker still checking or writing it loses its claim and stops."""
    job = ImportJob.objects.get(pk=job_id)
    stoppable = ImportJob.objects.filter(pk=job_id).exclude(
        status__in=[ImportJob.Status.DONE, ImportJob.Status.DISCARDED]
    )
    if not stoppable.update(status=ImportJob.Status.DISCARDED, claimed_by="", lease_until=None):
        if job.status == ImportJob.Status.DONE:
            raise ValidationError(_("This file is already imported; it cannot be discarded."))
        return
    staging.clear(job)
    job.problems.all().delete()
    job.file.delete(save=False)
    ImportJob.objects.filter(pk=job_id).update(file="", finished_at=timezone.now())


def column_titles(job: ImportJob) -> dict[str, str]:
    """Each column key as the file's own header wrote it (手機 rather than phone)."""
    if not job.file:
        return {}
    spec = SPECS[job.kind]
    with job.file.open("rb") as file:
        reader = rows(file, job.encoding)
        try:
            header = next(reader, [])
        finally:
            reader.close()
    columns, _missing = match_columns(header, spec.columns, spec.required)
    return {key: header[index].strip() for key, index in columns.items()}


def skipped_rows(job: ImportJob) -> Iterator[list[str]]:
    """The header and every row with a problem, as read from the file, with a last column
    giving the reasons (streamed: the file and the problems are both read in line order)."""
    titles = column_titles(job)
    problems = job.problems.order_by("line", "id").values_list("line", "column", "message")
    pending = iter(problems.iterator(chunk_size=2000))
    upcoming = next(pending, None)
    with job.file.open("rb") as file:
        for line, values in enumerate(rows(file, job.encoding), start=1):
            if line == 1:
                yield [*values, _("reason")]
                continue
            reasons = []
            while upcoming is not None and upcoming[0] <= line:
                if upcoming[0] == line:
                    column = titles.get(upcoming[1], upcoming[1])
                    reasons.append(f"{column}: {upcoming[2]}")
                upcoming = next(pending, None)
            if reasons:
                yield [*values, "; ".join(reasons)]
