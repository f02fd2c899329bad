"""The import from the terminal: the same services as the admin, with progress printed."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from . import services
from .reading import ENCODINGS


class ImportCommand(BaseCommand):
    kind = ""

    def add_arguments(self, parser):
        parser.add_argument("path", help="CSV (UTF-8, UTF-8 with BOM, CP950) or .xlsx")
        parser.add_argument("--dry-run", action="store_true", help="Check only; write nothing.")
        parser.add_argument("--encoding", choices=list(ENCODINGS), default="")
        parser.add_argument(
            "--valid-only",
            action="store_true",
            help="Write the valid rows and skip the bad ones (saved to PATH.skipped.csv).",
        )
        parser.add_argument("--user", help="The operator recorded in the audit log.")
        parser.add_argument(
            "--notify",
            action="store_true",
            help="E-mail members whose tier the import changes and issue upgrade gifts "
            "(off by default).",
        )

    def handle(self, *args, path, dry_run, encoding, valid_only, user, notify, **options):
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"No such file: {path}")
        actor = None
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"No such user: {user}")
        with file.open("rb") as handle:
            job = services.create_job(
                kind=self.kind,
                file=File(handle, name=file.name),
                filename=file.name,
                actor=actor,
                encoding=encoding,
                allow_new_tags=options.get("allow_new_tags", False),
            )
        if job.status == job.Status.ENCODING:
            sample = "\n".join(",".join(row) for row in services.encoding_sample(job))
            services.discard(job.pk)
            raise CommandError(
                f"The encoding could only be guessed ({job.encoding}); the file reads so:\n"
                f"{sample}\nRun again with --encoding {job.encoding} if this is right, or "
                f"with another of: {', '.join(ENCODINGS)}."
            )
        self.stdout.write(f"Checking {file.name}…")
        job = services.check(job.pk, progress=self._progress)
        if job.status == job.Status.FAILED:
            raise CommandError(job.message)
        for problem in job.problems.all().iterator():
            self.stdout.write(
                f"line {problem.line}, {problem.column} [{problem.value}]: {problem.message}"
            )
        self.stdout.write(
            f"{job.total_rows} rows, {job.error_rows} with errors, "
            f"{job.existing_rows} updating existing records"
        )
        if dry_run:
            services.discard(job.pk)
            self.stdout.write("Dry run: nothing written.")
            return
        try:
            services.confirm(job.pk, actor=actor, valid_only=valid_only, notify=notify)
        except ValidationError as exc:
            services.discard(job.pk)
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write("Writing…")
        job = services.write(job.pk)
        self.stdout.write(f"{job.created} created, {job.updated} updated, {job.skipped} skipped")
        if job.status != job.Status.DONE:
            raise CommandError(job.message or job.get_status_display())
        self.stdout.write(
            f"{job.emails_queued} e-mails queued, {job.gifts_issued} gifts issued"
            if notify
            else "No e-mails sent, no gifts issued (--notify not given)."
        )
        if job.skipped:
            skipped = file.with_suffix(".skipped.csv")
            with skipped.open("w", encoding="utf-8-sig", newline="") as out:
                csv.writer(out).writerows(services.skipped_rows(job))
            self.stdout.write(f"Skipped rows: {skipped}")

    def _progress(self, job) -> None:
        if sys.stdout.isatty() or job.status == job.Status.CHECKED:
            self.stdout.write(
                f"  {job.rows_done:,} / {job.total_rows:,} rows, {job.error_rows:,} with errors"
            )
