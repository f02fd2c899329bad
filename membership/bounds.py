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
