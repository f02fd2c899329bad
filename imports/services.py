"""The life of an import: upload → check (staging, problems) → confirm → write → done.

Check and write run in Celery tasks for big files (eager where no broker runs); each
step claims the job with a conditional UPDATE, so a task delivered twice does nothing
the second time.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.models import Cause
from membership.services import recompute_members, record_audit

from . import members, orders, staging
from .models import ImportJob, Problem
from .reading import detect_encoding, estimate_rows, is_xlsx, match_columns, rows

CHUNK = 5000
RECOMPUTE_BATCH = 50_000
# What reading a file that is not a CSV or a workbook raises (openpyxl's are ValueErrors).
UNREADABLE = (UnicodeDecodeError, ValueError, KeyError, OSError, zipfile.BadZipFile, csv.Error)
Progress = Callable[[ImportJob], None]


@dataclass(frozen=True)
class Spec:
    columns: dict[str, list[str]]
    required: tuple[str, ...]
    rows: type
    permission: str


SPECS = {
    ImportJob.Kind.MEMBERS: Spec(
        members.COLUMNS, members.REQUIRED, members.MemberRows, "imports.import_members"
    ),
    ImportJob.Kind.ORDERS: Spec(
        orders.COLUMNS, orders.REQUIRED, orders.OrderRows, "imports.import_orders"
    ),
}


def can_import(user, kind: str) -> bool:
    return user.has_perm(SPECS[kind].permission)


def create_job(
    *, kind: str, file, filename: str, actor, encoding: str = "", allow_new_tags: bool = False
) -> ImportJob:
    if actor is not None and not can_import(actor, kind):
        raise ValidationError(_("You do not have permission to import this kind of file."))
    job = ImportJob(
        kind=kind,
        filename=filename[:200],
        encoding=encoding,
        allow_new_tags=allow_new_tags,
        created_by=actor,
    )
    job.file.save(filename[-100:], file if isinstance(file, File) else File(file), save=False)
    job.save()
    return job


def check(job_id: int, progress: Progress | None = None) -> ImportJob:
    """Read the file once: valid rows to staging, bad ones to problems; then cross-row checks."""
    if not ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.CHECKING
    ):
        return ImportJob.objects.get(pk=job_id)
    job = ImportJob.objects.get(pk=job_id)
    try:
        _check(job, progress or (lambda job: None))
    except UNREADABLE as exc:
        job.status = ImportJob.Status.FAILED
        job.message = _("The file could not be read as CSV or Excel (.xlsx): %(error)s") % {
            "error": exc
        }
        job.save()
    except Exception as exc:
        # Never leave the job "checking" for ever: the page would refresh without end.
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.FAILED,
            message=_("The check stopped: %(error)s") % {"error": exc},
        )
        raise
    return job


def _check(job: ImportJob, progress: Progress) -> None:
    spec = SPECS[job.kind]
    with job.file.open("rb") as file:
        job.total_rows = estimate_rows(file)
        if not is_xlsx(file) and not job.encoding:
            job.encoding = detect_encoding(file)
        job.save(update_fields=["total_rows", "encoding"])
        reader = rows(file, job.encoding)
        try:
            columns, missing = match_columns(next(reader, []), spec.columns, spec.required)
            if not missing:
                _check_rows(job, reader, columns, spec.rows(job), progress)
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
        job.error_rows = (
            Problem.objects.filter(job=job).values("line").annotate(n=Count("id")).count()
        )
        job.existing_rows = checker.existing()
    job.status = ImportJob.Status.CHECKED
    job.finished_at = timezone.now()
    job.save()
    progress(job)


def _check_rows(job, reader: Iterator[list[str]], columns, checker, progress: Progress) -> None:
    staged, problems, done, bad = [], [], 0, 0
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        done += 1
        raw = {key: values[i].strip() if i < len(values) else "" for key, i in columns.items()}
        objects, errors = checker.clean(line, raw)
        if errors:
            bad += 1
            problems += [
                Problem(job_id=job.pk, line=line, column=c, message=m[:300]) for c, m in errors
            ]
        else:
            staged += objects
        if done % CHUNK == 0:
            staging.write(staged, problems)
            staged, problems = [], []
            job.rows_done, job.error_rows = done, bad
            job.total_rows = max(job.total_rows, done)
            ImportJob.objects.filter(pk=job.pk).update(
                rows_done=done, error_rows=bad, total_rows=job.total_rows
            )
            progress(job)
    staging.write(staged, problems)
    job.total_rows = job.rows_done = done


def confirm(job_id: int, *, actor, valid_only: bool) -> ImportJob:
    """The operator's go-ahead, checked at once; the writing itself is ``write``."""
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
        job.written_by = actor
        job.save(update_fields=["status", "valid_only", "written_by"])
    return job


def write(job_id: int) -> ImportJob:
    """Every valid row in one transaction, then every imported member evaluated set-based."""
    job = ImportJob.objects.get(pk=job_id)
    if job.status != ImportJob.Status.WRITING:
        return job
    try:
        with transaction.atomic():
            job = ImportJob.objects.select_for_update().get(pk=job_id)
            if job.status != ImportJob.Status.WRITING:
                return job
            _write(job)
    except Exception as exc:
        job.refresh_from_db()
        job.status = ImportJob.Status.FAILED
        job.message = _("Nothing was written: %(error)s") % {"error": exc}
        job.save(update_fields=["status", "message"])
        raise
    return job


def _write(job: ImportJob) -> None:
    now = timezone.now()
    checker = SPECS[job.kind].rows(job)
    job.created, job.updated = checker.write(now)
    job.skipped = job.error_rows if job.valid_only else 0
    # Bounded batches of ids: memory stays flat however big the file.
    ids = checker.member_ids().order_by("pk").iterator(chunk_size=CHUNK)
    for chunk in staging.batched(ids, RECOMPUTE_BATCH):
        recompute_members(member_ids=chunk, cause=Cause.IMPORT, actor=job.written_by, now=now)
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
        },
    )
    job.status = ImportJob.Status.DONE
    job.finished_at = timezone.now()
    job.rows_done = job.total_rows
    job.save()


def discard(job_id: int) -> None:
    """Forget a checked file: staging, problems and the stored file go."""
    job = ImportJob.objects.get(pk=job_id)
    if job.status in {ImportJob.Status.WRITING, ImportJob.Status.DONE}:
        return
    staging.clear(job)
    job.problems.all().delete()
    job.file.delete(save=False)
    job.status = ImportJob.Status.DISCARDED
    job.save()


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
    """The header and every row with a problem, as read from the file (streamed)."""
    bad = set(job.problems.values_list("line", flat=True))
    with job.file.open("rb") as file:
        for line, values in enumerate(rows(file, job.encoding), start=1):
            if line == 1 or line in bad:
                yield values
