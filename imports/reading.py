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
import unicodedata
from collections.abc import Iterator
from typing import IO

from django.utils import timezone
from django.utils.translation import gettext as _

ENCODINGS = ("utf-8", "utf-8-sig", "cp950", "cp1252")
# Decoding with these succeeds on almost any bytes, so a file read with one is shown to
# the operator before the check: Latin-1 "Renée" reads as CP950 "Ren嶪" without an error.
GUESSED = ("cp950", "cp1252")
# Digits are ASCII only (re.ASCII): \d would take full-width and Arabic-Indic digits too.
ROC = re.compile(r"^(?:民國)?(\d{2,3})[/.\-年](\d{1,2})[/.\-月](\d{1,2})日?$", re.ASCII)
ISO = re.compile(r"^(\d{4})[/.\-](\d{1,2})[/.\-](\d{1,2})$", re.ASCII)
TIME = re.compile(r"^(.+?)[ T](\d{1,2}):(\d{2})(?::(\d{2}))?$", re.ASCII)
PHONE_NOISE = re.compile(r"[\s\-().]")
MOBILE = re.compile(r"09\d{8}", re.ASCII)
# The shape of an amount, checked before any conversion, so "1e1000000", "Infinity" or
# "sNaN" cost a regular-expression match and nothing more.
AMOUNT = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?", re.ASCII)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The largest value of a 64-bit column (PostgreSQL's bigint).
BIGINT_MAX = 2**63 - 1
# How far in the future a date may be before it is refused: clocks disagree a little.
CLOCK_SKEW = dt.timedelta(minutes=10)
SHOWN_VALUE = 80
_CHUNK = 1 << 16


class FileError(ValueError):
    """The file as a whole cannot be read (not one row of it)."""


def is_xlsx(file: IO[bytes]) -> bool:
    file.seek(0)
    magic = file.read(4)
    file.seek(0)
    return magic == b"PK\x03\x04"


def detect_encoding(file: IO[bytes]) -> str:
    """UTF-8 with a BOM, UTF-8, else CP950, else Windows-1252: the first that decodes the
    whole file (read in chunks). The last two are guesses (``GUESSED``)."""
    file.seek(0)
    if file.read(3) == codecs.BOM_UTF8:
        file.seek(0)
        return "utf-8-sig"
    try:
        for encoding in ("utf-8", "cp950"):
            if _decodes(file, encoding):
                return encoding
        return "cp1252"
    finally:
        file.seek(0)


def _decodes(file: IO[bytes], encoding: str) -> bool:
    file.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        while chunk := file.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def sample_rows(file: IO[bytes], encoding: str, count: int = 6) -> list[list[str]]:
    """The header and the first rows as ``encoding`` reads them (undecodable bytes as �)."""
    file.seek(0)
    text = io.TextIOWrapper(file, encoding=encoding, errors="replace", newline="")
    try:
        found = []
        for row in csv.reader(text):
            found.append(row)
            if len(found) == count:
                break
        return found
    except csv.Error:
        return found
    finally:
        with contextlib.suppress(ValueError):
            text.detach()


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
    # Strict: a quote that is never closed is an error, not the rest of the file in one cell.
    reader = csv.reader(text, strict=True)
    try:
        first, line = True, 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "end of data" in str(exc):
                    raise FileError(
                        _("the quoted cell that starts on line %(line)s is never closed")
                        % {"line": line}
                    ) from exc
                raise FileError(
                    _("line %(line)s is not valid CSV (%(error)s)")
                    % {"line": reader.line_num, "error": exc}
                ) from exc
            line = reader.line_num + 1
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


def shown(value: str) -> str:
    """A cell as a problem shows it: control characters written out, long text cut."""
    text = CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    if len(text) > SHOWN_VALUE:
        text = text[:SHOWN_VALUE] + "…" + _("(%(count)s characters)") % {"count": len(value)}
    return text


def cell_problem(value: str, limit: int) -> str | None:
    """Why a cell cannot be used as it is, whatever its column: control characters or
    more characters than its column holds (text is never cut to fit)."""
    if match := CONTROL.search(value):
        return _("contains a control character (\\x%(code)02x)") % {"code": ord(match.group())}
    if len(value) > limit:
        return _("longer than %(limit)s characters (%(length)s)") % {
            "limit": limit,
            "length": len(value),
        }
    return None


def normalise_phone(value: str) -> str:
    """Taiwanese mobiles in one form: 0912345678 (from 0912-345-678, +886 912 345 678,
    full-width ０９１２…).

    A nine-digit 9xxxxxxxx is a mobile whose leading zero Excel dropped.
    """
    digits = PHONE_NOISE.sub("", unicodedata.normalize("NFKC", value))
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


def not_in_future(moment: dt.date | dt.datetime, now: dt.datetime | None = None) -> None:
    """Refuse a date or time later than now (plus a little clock skew)."""
    latest = (now or timezone.now()) + CLOCK_SKEW
    if isinstance(moment, dt.datetime):
        late = moment > latest
    else:
        late = moment > timezone.localdate(latest)
    if late:
        raise ValueError(_("in the future"))


def parse_amount(value: str, maximum: int = BIGINT_MAX) -> int:
    """Whole New Taiwan dollars, as written: 1,200 or NT$1,200 or 1200.00.

    The text's shape is checked first (ASCII digits, thousands commas, a zero fraction), so
    exponents, Infinity and NaN never reach a conversion, and no cell costs more than a match.
    """
    text = value.strip().removeprefix("NT$").removeprefix("$")
    if text.startswith("-") and AMOUNT.fullmatch(text[1:]):
        raise ValueError(_("cannot be negative"))
    match = AMOUNT.fullmatch(text)
    if not match:
        raise ValueError(_("not an amount in NT$ (1,200 or 1200)"))
    whole, fraction = match.group(1).replace(",", ""), match.group(2) or ""
    if fraction.strip("0"):
        raise ValueError(_("NT$ amounts are whole dollars"))
    whole = whole.lstrip("0") or "0"
    if len(whole) > len(str(maximum)) or int(whole) > maximum:
        raise ValueError(_("more than %(maximum)s") % {"maximum": f"{maximum:,}"})
    return int(whole)
