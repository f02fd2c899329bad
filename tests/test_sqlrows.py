"""Rows of hand-written statements made into model values (membership/sqlrows.py)."""

from decimal import Decimal

from membership.sqlrows import column_value


def test_a_decimal_sqlite_hands_back_as_a_float_becomes_the_decimal_it_was_written_as():
    value = column_value("DecimalField", 0.1)

    assert value == Decimal("0.1")
    assert isinstance(value, Decimal)
