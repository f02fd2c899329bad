"""The bounds of an integer column, as validators on the model field.

A value outside its column's range must be refused with a message before it reaches
the database: PostgreSQL with server-side binding does not always refuse it (a
bulk update's ``CAST(%s AS integer)`` of a bound ``bigint`` was seen to store
4294967301 as 5). The ranges are PostgreSQL's column types, which Django names per
field class; SQLite's columns are wider, so naming them here keeps both the same.
"""

from typing import TypeVar

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations

IntegerFieldT = TypeVar("IntegerFieldT", bound=models.IntegerField)

COLUMN_RANGES: dict[str, tuple[int, int]] = BaseDatabaseOperations.integer_field_ranges


def column_range(field: models.IntegerField) -> tuple[int, int]:
    """The smallest and largest value the field's database column holds."""
    return COLUMN_RANGES[field.get_internal_type()]


def bounded(field: IntegerFieldT, *, minimum: int | None = None) -> IntegerFieldT:
    """The field, validated to its column's range (from ``minimum`` when that is higher)."""
    low, high = column_range(field)
    if minimum is not None:
        low = max(low, minimum)
    field._validators = [*field._validators, MinValueValidator(low), MaxValueValidator(high)]
    return field


def send_integers_as_text_to_postgresql() -> None:
    """Let PostgreSQL itself refuse an integer too large for its column.

    With server-side binding Django wraps each integer field's value in psycopg's
    ``Int2``/``Int4``/``Int8``, whose binary dumpers (psycopg's C implementation) keep only
    the low 2, 4 or 8 bytes: 2**40 reached an ``integer`` column as 0, with no error. Sent
    as text, the same values are parsed by the server, which answers "out of range". The
    validators above say it first, with a message; this stops every path that skips them
    (``update()``, ``bulk_update()``, a service's arithmetic).
    """
    try:
        import psycopg
        from psycopg.types import numeric
    except ImportError:  # psycopg2 or no PostgreSQL driver: nothing is truncated there
        return
    for wrapper, text_dumper in [
        (numeric.Int2, numeric.Int2Dumper),
        (numeric.Int4, numeric.Int4Dumper),
        (numeric.Int8, numeric.Int8Dumper),
    ]:
        psycopg.adapters.register_dumper(wrapper, text_dumper)
