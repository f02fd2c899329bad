"""Model instances from hand-written SELECTs, and hand-written writes of model instances,
the same on PostgreSQL and SQLite.

``QuerySet.raw()`` maps the cursor's columns to fields afresh on every call, which cost
more Python than the statements an order runs take in the database. A statement here
names the model's columns in field order (``columns``) and ``instance`` builds the row's
model directly, converting what SQLite hands back as text; ``partial_instance`` builds
one from some of its columns (the member page's one read).

``insert_row`` and ``update_columns`` write an instance the way ``save()`` does (each
field's own conversion, ``pre_save`` included) in one statement built once per model:
an order that moves a tier writes its member and its history row, and ``save()`` spent
longer building those statements than the database took to run them. Neither sends
``pre_save``/``post_save``: use them only for models no receiver listens to (a test
holds that for the ones that do).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from functools import lru_cache

from django.db import connection
from django.utils import timezone

from .sqltime import from_db


@lru_cache(maxsize=64)
def columns(model) -> str:
    """The model's columns in field order, for a SELECT that ``instance`` reads."""
    return ", ".join(f.column for f in model._meta.concrete_fields)


def instance(model, row, *, using: str = "default"):
    """The model of a row selected with ``columns(model)``."""
    names, kinds = _fields(model)
    values = [column_value(kind, value) for kind, value in zip(kinds, row, strict=True)]
    return model.from_db(using, names, values)


def partial_instance(using: str, model, row: dict):
    """The model from some of its columns (``row``: attribute name to value, in any
    order); the fields not in ``row`` stay deferred."""
    names = _in_field_order(model, tuple(row))
    return model.from_db(using, names, [column_value(field_kind(model, n), row[n]) for n in names])


@lru_cache(maxsize=16)
def _in_field_order(model, columns: tuple[str, ...]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields if f.attname in columns]


@lru_cache(maxsize=64)
def _fields(model) -> tuple[list[str], list[str]]:
    fields = model._meta.concrete_fields
    return [f.attname for f in fields], [f.get_internal_type() for f in fields]


@lru_cache(maxsize=64)
def field_kind(model, name: str) -> str:
    """The internal type of the field behind column ``name`` (``…_id`` for a foreign key)."""
    return model._meta.get_field(
        name.removesuffix("_id") if name.endswith("_id") else name
    ).get_internal_type()


def column_value(kind: str, value):
    """A value as a field of ``kind`` holds it (SQLite hands back text for times and JSON,
    and numbers for decimals; both give JSON as text)."""
    if value is None:
        return None
    if kind == "DateTimeField":
        moment = from_db(value)
        return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt.UTC)
    if kind == "DateField" and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if kind == "JSONField" and isinstance(value, str):
        return json.loads(value)
    if kind == "DecimalField" and not isinstance(value, Decimal):
        return Decimal(str(value))  # str() first: never a binary float's digits
    return value


def insert_row(obj) -> None:
    """INSERT ``obj`` (every concrete field but its auto primary key) and set its pk."""
    model = type(obj)
    fields = _insert_fields(model)
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model), values)
        obj.pk = cursor.fetchone()[0]
    obj._state.adding = False
    obj._state.db = "default"


def update_columns(obj, names: tuple[str, ...]) -> None:
    """``obj.save(update_fields=names)`` as one UPDATE by primary key."""
    fields = _update_fields(type(obj), names)
    values = [f.get_db_prep_save(f.pre_save(obj, False), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(type(obj), names), [*values, obj.pk])


@lru_cache(maxsize=16)
def _insert_fields(model) -> list:
    return [f for f in model._meta.concrete_fields if f is not model._meta.auto_field]


@lru_cache(maxsize=16)
def _insert_sql(model) -> str:
    names = [connection.ops.quote_name(f.column) for f in _insert_fields(model)]
    return (
        f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({', '.join(names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))}) "
        f"RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    )


@lru_cache(maxsize=16)
def _update_fields(model, names: tuple[str, ...]) -> list:
    return [model._meta.get_field(name) for name in names]


@lru_cache(maxsize=16)
def _update_sql(model, names: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(f.column)} = %s" for f in _update_fields(model, names))
    return (
        f"UPDATE {quote(model._meta.db_table)} SET {sets} WHERE {quote(model._meta.pk.column)} = %s"
    )
