"""Helpers for the import tests: files made by the tests, run through the services."""

import io

from imports import services
from tests.factories import staff_with

EN_HEADER = "external_id,name,phone,email,birthday,tags\n"


def csv_bytes(rows: list[str], header: str = EN_HEADER, encoding: str = "utf-8") -> bytes:
    return (header + "\n".join(rows) + "\n").encode(encoding)


def importer():
    return staff_with("import_members", "import_orders")


def check(data: bytes, *, kind: str = "members", filename: str = "members.csv", **options):
    job = services.create_job(
        kind=kind, file=io.BytesIO(data), filename=filename, actor=None, **options
    )
    return services.check(job.pk)


def run(data: bytes, *, valid_only: bool = False, **options):
    job = check(data, **options)
    services.confirm(job.pk, actor=importer(), valid_only=valid_only)
    return services.write(job.pk)
