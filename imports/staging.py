"""Writing staging rows and problems in chunks: COPY on PostgreSQL, bulk inserts elsewhere."""

from __future__ import annotations

from collections import defaultdict

from django.db import connection

from .models import StagedMember, StagedOrder, StagedTag


def write(*batches: list) -> None:
    by_model = defaultdict(list)
    for batch in batches:
        for obj in batch:
            by_model[type(obj)].append(obj)
    for model, objects in by_model.items():
        _insert(model, objects)


def _insert(model, objects: list) -> None:
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects, batch_size=1000)
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
    names = [f.attname for f in fields]
    # Staging columns hold text, numbers, dates and aware datetimes, which psycopg writes
    # as they are; Django's per-field preparation was a third of the check's time.
    # psycopg's own cursor: its errors are made Django's (a lost connection is then an
    # OperationalError the job's handler knows).
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.cursor.copy(sql) as copy,
    ):
        for obj in objects:
            values = obj.__dict__
            copy.write_row([values[name] for name in names])


def clear(job) -> None:
    for model in (StagedMember, StagedTag, StagedOrder):
        model.objects.filter(job=job).delete()


def batched(iterable, size: int):
    """itertools.batched, which Python 3.11 lacks."""
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
