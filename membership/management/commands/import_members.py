from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from membership.importing import import_members


class Command(BaseCommand):
    help = (
        "Import members from a CSV file (UTF-8, UTF-8 with BOM or CP950; English or zh-Hant "
        "headers). Every row is checked first; nothing is written while any row is bad."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--dry-run", action="store_true", help="Check only; write nothing.")
        parser.add_argument("--encoding", choices=["utf-8", "utf-8-sig", "cp950"])
        parser.add_argument(
            "--valid-only",
            action="store_true",
            help="Write the valid rows and skip the bad ones (written to PATH.skipped.csv).",
        )
        parser.add_argument("--allow-new-tags", action="store_true")

    def handle(self, *args, path, dry_run, encoding, valid_only, allow_new_tags, **options):
        file = Path(path)
        if not file.exists():
            raise CommandError(f"No such file: {path}")
        self.stdout.write(f"Checking {file.name}…")
        report = import_members(
            file.read_bytes(),
            filename=file.name,
            encoding=encoding,
            dry_run=dry_run,
            valid_only=valid_only,
            allow_new_tags=allow_new_tags,
        )
        for error in report.errors:
            self.stdout.write(f"line {error.line}, {error.column}: {error.message}")
        self.stdout.write(
            f"{report.total} rows, {len(report.bad_lines)} with errors; "
            f"{report.created} created, {report.updated} updated"
            + ("" if report.written else " — nothing written")
        )
        if report.skipped_csv and report.written:
            skipped = file.with_suffix(".skipped.csv")
            skipped.write_text(report.skipped_csv, encoding="utf-8-sig")
            self.stdout.write(f"Skipped rows: {skipped}")
        if report.errors and not report.written and not dry_run:
            raise CommandError("The file has errors; fix them or use --valid-only.")
