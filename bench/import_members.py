#!/usr/bin/env python
"""Benchmark: importing a member file through the admin's code path, against COPY.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/import_members.py --scale 200000

In a scratch database beside the one in DATABASE_URL (``<name>_bench_import``, dropped
and re-created), with the demo programme: writes a CSV of N members as a Taiwanese
shop's old system would (UTF-8 with BOM, zh-Hant headers, 0912-345-678 phones, mixed-
case e-mails, 民國 birthdays for half, tags for some, joined dates), then

- imports it with the services the admin's upload, check and confirm buttons call
  (stream-check into staging, one-transaction write, set-based evaluation, audit);
- loads the same file with COPY into an unindexed table of the same columns.

It then streams the export of every member (as the admin's Export button does) into
nothing. Peak memory is the process's peak resident set size.

Before all that, django-import-export's own import (a ModelResource reading the same
columns with the importer's phone and date rules, one row at a time as its admin
import does) loads the first 20,000 rows of the same file, timed, and is rolled back:
the number behind keeping the staged path for the migration. Last line:

    import_members: rows=N seconds=S rows_per_s=R copy_seconds=C ratio=S/C peak_mb=M
        import_export_rows=K import_export_rows_per_s=E
"""

import argparse
import csv
import random
import resource
import tempfile
import time
from pathlib import Path

from synthetic import scratch_database, setup_django

HEADER = ["會員編號", "姓名", "手機", "電子郵件", "生日", "標籤", "入會日期"]


def write_file(path: Path, n: int) -> None:
    rnd = random.Random(7)
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for i in range(n):
            phone = f"09{i % 100_000_000:08d}"
            phone = f"{phone[:4]}-{phone[4:7]}-{phone[7:]}" if i % 2 else "+886 " + phone[1:]
            year = rnd.randint(1960, 2005)
            birthday = (
                f"{year - 1911}/{rnd.randint(1, 12):02d}/{rnd.randint(1, 28):02d}"
                if i % 2
                else f"{year}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
            )
            tags = "企業客戶" if i % 33 == 0 else ("員工" if i % 100 == 1 else "")
            writer.writerow(
                [
                    f"OLD{i:07d}",
                    f"會員{i}",
                    phone,
                    f"Member{i}@Example.COM",
                    birthday,
                    tags,
                    f"{rnd.randint(2015, 2025)}-{rnd.randint(1, 12):02d}-01",
                ]
            )


IMPORT_EXPORT_ROWS = 20_000
spent: dict[str, float] = {}


def time_import_export(path: Path, rows: int) -> tuple[int, float]:
    """django-import-export's import of the file's first ``rows`` rows, rolled back.

    Same file, same columns, the importer's own phone and date rules; without the
    staged path's set-based write and evaluation (it has none), so the comparison
    favours django-import-export.
    """
    import tablib
    from django.db import transaction
    from import_export import fields, resources, widgets

    from imports.reading import normalise_phone, parse_date, parse_datetime
    from membership.models import Member, Tag

    class Parsed(widgets.Widget):
        def __init__(self, parse):
            super().__init__()
            self.parse = parse

        def clean(self, value, row=None, **kwargs):
            return self.parse(value) if value else None

    class MemberFile(resources.ModelResource):
        external_id = fields.Field(attribute="external_id", column_name="會員編號")
        name = fields.Field(attribute="name", column_name="姓名")
        phone = fields.Field(attribute="phone", column_name="手機", widget=Parsed(normalise_phone))
        email = fields.Field(attribute="email", column_name="電子郵件", widget=Parsed(str.lower))
        birthday = fields.Field(attribute="birthday", column_name="生日", widget=Parsed(parse_date))
        joined_at = fields.Field(
            attribute="joined_at", column_name="入會日期", widget=Parsed(parse_datetime)
        )
        tags = fields.Field(
            attribute="tags", column_name="標籤", widget=widgets.ManyToManyWidget(Tag, field="name")
        )

        class Meta:
            model = Member
            fields = ("external_id", "name", "phone", "email", "birthday", "joined_at", "tags")
            import_id_fields = ("external_id",)
            clean_model_instances = True

    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        dataset = tablib.Dataset(headers=header)
        for i, row in enumerate(reader):
            if i == rows:
                break
            dataset.append(row)

    start = time.perf_counter()
    with transaction.atomic():
        result = MemberFile().import_data(dataset, dry_run=False, use_transactions=True)
        seconds = time.perf_counter() - start
        assert not result.has_errors(), result.base_errors[:1]
        assert not result.has_validation_errors(), result.invalid_rows[:1]
        assert result.totals["new"] == len(dataset), result.totals
        transaction.set_rollback(True)
    return len(dataset), seconds


def timer(execute, sql, params, many, context):
    """Where the write's time goes, by statement (printed before the last line)."""
    start = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        key = " ".join(sql.split())[:60]
        spent[key] = spent.get(key, 0) + time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=200_000, help="members (rows)")
    n = parser.parse_args().scale

    scratch_database("_bench_import")
    setup_django()
    from django.contrib.auth import get_user_model
    from django.core.files import File
    from django.core.management import call_command
    from django.db import connection

    from imports import services
    from membership.management.commands.seed_demo import Command as Seed

    call_command("migrate", verbosity=0)
    Seed()._programme()
    operator = get_user_model().objects.create_superuser("bench", password="x")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "members.csv"
        write_file(path, n)

        ie_rows, ie_seconds = time_import_export(path, min(n, IMPORT_EXPORT_ROWS))

        start = time.perf_counter()
        with path.open("rb") as handle:
            job = services.create_job(
                kind="members",
                file=File(handle, name=path.name),
                filename=path.name,
                actor=operator,
            )
        job = services.check(job.pk)
        checked = time.perf_counter()
        assert job.error_rows == 0, list(job.problems.all()[:5])
        services.confirm(job.pk, actor=operator, valid_only=False)
        with connection.execute_wrapper(timer):
            job = services.write(job.pk)
        seconds = time.perf_counter() - start
        write_seconds = time.perf_counter() - checked
        assert job.created == n, (job.created, n)

        # The export the admin streams, drained into nothing: time, and memory that stays flat.
        from imports import exports
        from membership.models import Member

        export_start = time.perf_counter()
        exported = sum(
            1 for _line in exports.csv_lines(["h"], exports.member_rows(Member.objects.all()))
        )
        export_seconds = time.perf_counter() - export_start

        with connection.cursor() as cur:
            cur.execute(
                "CREATE TABLE bench_copy (external_id text, name text, phone text, email text, "
                "birthday text, tags text, joined_at text)"
            )
        copy_start = time.perf_counter()
        with (
            connection.cursor() as cur,
            path.open("rb") as handle,
            cur.cursor.copy("COPY bench_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        copy_seconds = time.perf_counter() - copy_start

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for key, value in sorted(spent.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {value:6.2f} s  {key}")
    print(
        f"check_seconds={checked - start:.2f} write_seconds={write_seconds:.2f} "
        f"export_rows={exported - 1} export_seconds={export_seconds:.2f}"
    )
    print(
        f"import_members: rows={n} seconds={seconds:.2f} rows_per_s={n / seconds:.0f} "
        f"copy_seconds={copy_seconds:.2f} ratio={seconds / copy_seconds:.2f} peak_mb={peak_mb:.0f} "
        f"import_export_rows={ie_rows} import_export_rows_per_s={ie_rows / ie_seconds:.0f}"
    )


if __name__ == "__main__":
    main()
