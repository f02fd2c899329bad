"""Member import from CSV: decode, normalise, validate every row, then write set-based.

Nothing is written while any row is bad, unless the operator asks for the valid rows
only; then the skipped rows come back as a CSV of their own. Members are matched by
external id (updated, never a silent second member), evaluated set-based afterwards,
and the import is one audit entry.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import Cause, Member, MemberTag, Tag
from .services import recompute_members, record_audit

COLUMNS = {
    "external_id": ["external_id", "external id", "外部編號", "會員編號"],
    "name": ["name", "姓名", "名稱"],
    "phone": ["phone", "mobile", "手機", "電話"],
    "email": ["email", "e-mail", "電子郵件", "信箱"],
    "birthday": ["birthday", "生日"],
    "tags": ["tags", "標籤"],
    "joined_at": ["joined_at", "joined", "加入日期", "入會日期"],
}
REQUIRED = ("external_id", "name")
ROC = re.compile(r"^(?:民國)?(\d{2,3})[/.\-年](\d{1,2})[/.\-月](\d{1,2})日?$")
ISO = re.compile(r"^(\d{4})[/.\-](\d{1,2})[/.\-](\d{1,2})$")
TAG_SPLIT = re.compile(r"[,;|、，]")


def decode(data: bytes, encoding: str | None = None) -> str:
    """UTF-8 (with or without BOM) or CP950 (Big5 as Excel writes it). The BOM never stays."""
    if encoding:
        return data.decode(encoding).lstrip("\ufeff")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp950")


def normalise_phone(value: str) -> str:
    """Taiwanese mobiles in one form: 0912345678 (from 0912-345-678, +886 912 345 678…)."""
    digits = re.sub(r"[\s\-().]", "", value)
    if digits.startswith("+886"):
        digits = "0" + digits[4:]
    elif digits.startswith("886") and len(digits) == 12:
        digits = "0" + digits[3:]
    if not re.fullmatch(r"09\d{8}", digits):
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


@dataclass
class RowError:
    line: int
    column: str
    message: str


@dataclass
class Report:
    total: int = 0
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)
    skipped_csv: str = ""
    written: bool = False

    @property
    def bad_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})


def _columns(header: list[str]) -> tuple[dict[str, int], list[RowError]]:
    names = {alias.lower(): key for key, aliases in COLUMNS.items() for alias in aliases}
    found, errors = {}, []
    for index, title in enumerate(header):
        key = names.get(title.strip().lower())
        if key:
            found[key] = index
    for key in REQUIRED:
        if key not in found:
            errors.append(RowError(1, key, _("missing column")))
    return found, errors


def _clean_row(raw: dict[str, str], tags: dict[str, Tag], allow_new_tags: bool):
    clean, errors = {}, []
    for key in ("external_id", "name"):
        clean[key] = raw.get(key, "").strip()
        if not clean[key]:
            errors.append((key, _("required")))
    if phone := raw.get("phone", "").strip():
        try:
            clean["phone"] = normalise_phone(phone)
        except ValueError as exc:
            errors.append(("phone", str(exc)))
    if email := raw.get("email", "").strip():
        try:
            validate_email(email)
            clean["email"] = email.lower()
        except ValidationError:
            errors.append(("email", _("not an e-mail address")))
    for key in ("birthday", "joined_at"):
        if value := raw.get(key, "").strip():
            try:
                clean[key] = parse_date(value)
            except ValueError as exc:
                errors.append((key, str(exc)))
    names = [t.strip() for t in TAG_SPLIT.split(raw.get("tags", "")) if t.strip()]
    unknown = [n for n in names if n not in tags]
    if unknown and not allow_new_tags:
        errors.append(("tags", _("unknown tags: %(tags)s") % {"tags": ", ".join(unknown)}))
    clean["tags"] = names
    return clean, errors


def import_members(
    data: bytes,
    *,
    filename: str,
    actor=None,
    encoding: str | None = None,
    dry_run: bool = True,
    valid_only: bool = False,
    allow_new_tags: bool = False,
) -> Report:
    """Validate every row; write all of them in one transaction, or none.

    With ``valid_only`` the good rows are written and the bad ones returned as CSV.
    Idempotent: importing the same file again updates the same members.
    """
    report = Report()
    reader = csv.reader(io.StringIO(decode(data, encoding)))
    header = next(reader, [])
    columns, header_errors = _columns(header)
    if header_errors:
        report.errors = header_errors
        return report
    tags = {t.name: t for t in Tag.objects.all()}
    rows, seen, bad_raw = [], {}, []
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        report.total += 1
        raw = {key: values[i] if i < len(values) else "" for key, i in columns.items()}
        clean, errors = _clean_row(raw, tags, allow_new_tags)
        external_id = clean.get("external_id")
        if external_id and external_id in seen:
            errors.append(
                (
                    "external_id",
                    _("same external id as line %(line)s") % {"line": seen[external_id]},
                )
            )
        elif external_id:
            seen[external_id] = line
        if errors:
            report.errors += [RowError(line, column, message) for column, message in errors]
            bad_raw.append(values)
        else:
            rows.append(clean)
    if bad_raw:
        out = io.StringIO()
        csv.writer(out).writerows([header, *bad_raw])
        report.skipped_csv = out.getvalue()
    if dry_run or (report.errors and not valid_only) or not rows:
        return report
    _write(rows, report, tags=tags, actor=actor, filename=filename)
    return report


def _write(rows: list[dict], report: Report, *, tags: dict[str, Tag], actor, filename: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        for name in {n for row in rows for n in row["tags"]} - set(tags):
            tags[name] = Tag.objects.get_or_create(name=name)[0]
        existing = {
            m.external_id: m
            for m in Member.objects.filter(external_id__in=[r["external_id"] for r in rows])
        }
        fields = ["name", "phone", "email", "birthday"]
        new, changed = [], []
        for row in rows:
            member = existing.get(row["external_id"])
            if member is None:
                member = Member(external_id=row["external_id"], joined_at=now)
                new.append(member)
            else:
                changed.append(member)
            for f in fields:
                if f in row:
                    setattr(member, f, row[f])
            if "joined_at" in row:
                member.joined_at = timezone.make_aware(
                    dt.datetime.combine(row["joined_at"], dt.time())
                )
        Member.objects.bulk_create(new, batch_size=2000)
        Member.objects.bulk_update(changed, [*fields, "joined_at"], batch_size=2000)
        ids = dict(
            Member.objects.filter(external_id__in=[r["external_id"] for r in rows]).values_list(
                "external_id", "pk"
            )
        )
        MemberTag.objects.bulk_create(
            [
                MemberTag(member_id=ids[row["external_id"]], tag=tags[name])
                for row in rows
                for name in row["tags"]
            ],
            ignore_conflicts=True,
            batch_size=2000,
        )
        report.created, report.updated = len(new), len(changed)
        record_audit(
            actor=actor,
            action="member.import",
            object_type="membership.member",
            object_id="*",
            object_repr=filename[:200],
            after={
                "file": filename,
                "rows": report.total,
                "created": report.created,
                "updated": report.updated,
                "skipped": len(report.bad_lines),
            },
        )
        report.written = True
    recompute_members(member_ids=list(ids.values()), cause=Cause.RECOMPUTE, actor=actor)
