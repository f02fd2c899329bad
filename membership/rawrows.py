"""Model instances from rows a hand-written statement read, as the ORM would hand them back.

Where building the ORM's query costs more than the database takes to answer it (the
member's page, the session's user), the statement is written by hand and its row made
into the model's instance here, with the ORM's types on both databases.
"""

import datetime as dt
import json
from functools import lru_cache

from django.utils import timezone

from membership.sqltime import from_db


def instance_from_row(alias: str, model, row: dict):
    """``model``'s instance from ``row`` (attribute name to value) read on ``alias``;
    the fields not in ``row`` stay deferred."""
    # from_db takes the values in the model's field order.
    names = _in_field_order(model, tuple(row))
    return model.from_db(alias, names, [_column(model, n, row[n]) for n in names])


@lru_cache(maxsize=16)
def _in_field_order(model, columns: tuple[str, ...]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields if f.attname in columns]


@lru_cache(maxsize=64)
def _kind(model, name: str) -> str:
    return model._meta.get_field(
        name.removesuffix("_id") if name.endswith("_id") else name
    ).get_internal_type()


def _column(model, name: str, value):
    """A value as the model's field holds it (SQLite hands back text for times and JSON)."""
    if value is None:
        return None
    kind = _kind(model, name)
    if kind == "DateTimeField":
        moment = from_db(value)
        return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt.UTC)
    if kind == "DateField" and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if kind == "JSONField" and isinstance(value, str):
        return json.loads(value)
    return value
