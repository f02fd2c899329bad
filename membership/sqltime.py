"""Datetimes across raw SQL, the same on PostgreSQL and SQLite (which keeps naive UTC text)."""

from django.db import connection


def to_db(value):
    """A datetime as the database stores it, for a raw statement's parameters."""
    return connection.ops.adapt_datetimefield_value(value)


def from_db(value):
    """A datetime a raw statement read back: SQLite hands back its text form."""
    if isinstance(value, str):
        return connection.ops.convert_datetimefield_value(value, None, connection)
    return value
