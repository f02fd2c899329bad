"""Reading a file row by row, whatever Excel or the old system wrote, and the normalisers.

CSV in UTF-8, UTF-8 with a BOM or CP950 (Big5 as Excel on Traditional-Chinese Windows
writes it), or .xlsx. Rows are streamed: memory does not grow with the file.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import IO

from django.utils import timezone
from django.utils.translation import gettext as _

ENCODINGS = ("utf-8", "utf-8-sig", "cp950")
ROC = re.compile(r"^(?:民國)?(\d{2,3})[/.\-年](\d{1,2})[/.\-月](\d{1,2})日?$")
ISO = re.compile(r"^(\d{4})[/.\-](\d{1,2})[/.\-](\d{1,2})$")
TIME = re.compile(r"^(.+?)[ T](\d{1,2}):(\d{2})(?::(\d{2}))?$")
PHONE_NOISE = re.compile(r"[\s\-().]")
MOBILE = re.compile(r"09\d{8}")
_CHUNK = 1 << 16


def is_xlsx(file: IO[bytes]) -> bool:
    file.seek(0)
    magic = file.read(4)
    file.seek(0)
    return magic == b"PK\x03\x04"


def detect_encoding(file: IO[bytes]) -> str:
    """UTF-8 with a BOM, UTF-8, else CP950: decided on the whole file, read in chunks."""
    file.seek(0)
    if file.read(3) == codecs.BOM_UTF8:
        file.seek(0)
        return "utf-8-sig"
    file.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := file.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp950"
    finally:
        file.seek(0)


def estimate_rows(file: IO[bytes]) -> int:
    """Data rows, for the progress bar (a quoted line break may count once too many)."""
    if is_xlsx(file):
        from openpyxl import load_workbook

        sheet = load_workbook(file, read_only=True).active
        file.seek(0)
        return max((sheet.max_row or 1) - 1, 0)
    file.seek(0)
    lines, last = 0, b"\n"
    while chunk := file.read(_CHUNK):
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    file.seek(0)
    return max(lines + (last != b"\n") - 1, 0)


def rows(file: IO[bytes], encoding: str = "") -> Iterator[list[str]]:
    """Every row as strings, the header first. A BOM never reaches the first column name."""
    if is_xlsx(file):
        yield from _xlsx_rows(file)
        return
    text = io.TextIOWrapper(file, encoding=encoding or detect_encoding(file), newline="")
    try:
        first = True
        for row in csv.reader(text):
            if first and row:
                row[0] = row[0].lstrip("\ufeff")
                first = False
            yield row
    finally:
        with contextlib.suppress(ValueError):  # the caller closed the file first
            text.detach()


def _xlsx_rows(file: IO[bytes]) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    book = load_workbook(file, read_only=True, data_only=True)
    try:
        for values in book.active.iter_rows(values_only=True):
            yield [_cell(v) for v in values]
    finally:
        book.close()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ") if value.time() != dt.time() else value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def match_columns(
    header: list[str], aliases: dict[str, list[str]], required: tuple[str, ...]
) -> tuple[dict[str, int], list[str]]:
    """Column positions by English or zh-Hant header; the required keys that are missing."""
    names = {alias.lower(): key for key, options in aliases.items() for alias in options}
    found: dict[str, int] = {}
    for index, title in enumerate(header):
        key = names.get(title.strip().lower())
        if key and key not in found:
            found[key] = index
    return found, [key for key in required if key not in found]


def normalise_phone(value: str) -> str:
    """Taiwanese mobiles in one form: 0912345678 (from 0912-345-678, +886 912 345 678…).

    A nine-digit 9xxxxxxxx is a mobile whose leading zero Excel dropped.
    """
    digits = PHONE_NOISE.sub("", value)
    if digits.startswith("+886"):
        digits = "0" + digits[4:]
    elif digits.startswith("886") and len(digits) == 12:
        digits = "0" + digits[3:]
    elif len(digits) == 9 and digits.startswith("9"):
        digits = "0" + digits
    if not MOBILE.fullmatch(digits):
        raise ValueError(_("not a Taiwanese mobile number (09xx-xxx-xxx)"))
    return digits


def parse_date(value: str) -> dt.date:
    """ISO (1996-03-12, 1996/03/12) or 民國 (85/03/12, 民國85年3月12日)."""
    text = value.strip()
    if match := ISO.match(text):
        year, month, day = map(int, match.groups())
    elif match := ROC.match(text):
        year, month, day = map(int, match.groups())
        year += 1911
    else:
        raise ValueError(_("not a date (1996-03-12 or 民國 85/03/12)"))
    try:
        return dt.date(year, month, day)
    except ValueError as exc:
        raise ValueError(_("no such day")) from exc


def parse_datetime(value: str) -> dt.datetime:
    """A date as above, with an optional time (HH:MM[:SS]), in the site's time zone."""
    text = value.strip()
    clock = dt.time()
    if match := TIME.match(text):
        text = match.group(1)
        hour, minute, second = int(match.group(2)), int(match.group(3)), int(match.group(4) or 0)
        try:
            clock = dt.time(hour, minute, second)
        except ValueError as exc:
            raise ValueError(_("no such time of day")) from exc
    return timezone.make_aware(dt.datetime.combine(parse_date(text), clock))


def parse_amount(value: str) -> int:
    """Whole New Taiwan dollars, as written: 1,200 or NT$1,200 or 1200.00."""
    text = value.strip().replace(",", "").removeprefix("NT$").removeprefix("$")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(_("not an amount in NT$")) from exc
    if amount != amount.to_integral_value():
        raise ValueError(_("NT$ amounts are whole dollars"))
    if amount < 0:
        raise ValueError(_("cannot be negative"))
    return int(amount)
