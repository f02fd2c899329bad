"""Streamed CSV exports that a spreadsheet opens safely and the importer reads back.

Rows are read in chunks through a server-side cursor and written as they come, so a
million members never sit in memory. Every cell that a spreadsheet would run as a
formula (=, +, -, @, tab, CR first) is prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import get_language

from membership.models import MemberTag

from .staging import batched

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 2000

MEMBER_COLUMNS = [
    ("external_id", "會員編號"),
    ("name", "姓名"),
    ("phone", "手機"),
    ("email", "電子郵件"),
    ("birthday", "生日"),
    ("joined_at", "入會日期"),
    ("tags", "標籤"),
    ("group", "群組"),
    # Not "tier": the importer reads that as an opening tier to grant.
    ("current_tier", "目前等級"),
]
ORDER_COLUMNS = [
    ("order_id", "訂單編號"),
    ("member", "會員編號"),
    ("amount", "金額"),
    ("placed_at", "訂購時間"),
    ("channel", "通路"),
    ("refunded_amount", "退款金額"),
    ("status", "狀態"),
]


def escape(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(header: list[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """CSV text line by line, UTF-8 with a BOM first so Excel reads the Chinese right."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(header)
    for row in rows:
        yield writer.writerow([escape(v) for v in row])


def header(columns) -> list[str]:
    zh = (get_language() or "").startswith("zh")
    return [label if zh else key for key, label in columns]


def member_rows(members: QuerySet) -> Iterator[list]:
    values = members.order_by("pk").values_list(
        "pk",
        "external_id",
        "name",
        "phone",
        "email",
        "birthday",
        "joined_at",
        "group__name",
        "tier__name",
    )
    for chunk in batched(values.iterator(chunk_size=CHUNK), CHUNK):
        tags: dict[int, list[str]] = {}
        for member_id, name in MemberTag.objects.filter(
            member_id__in=[row[0] for row in chunk]
        ).values_list("member_id", "tag__name"):
            tags.setdefault(member_id, []).append(name)
        for pk, ext, name, phone, email, birthday, joined, group, tier in chunk:
            yield [
                ext,
                name,
                phone,
                email,
                birthday.isoformat() if birthday else "",
                timezone.localtime(joined).date().isoformat(),
                ",".join(sorted(tags.get(pk, []))),
                group or "",
                tier or "",
            ]


def order_rows(orders: QuerySet) -> Iterator[list]:
    values = orders.order_by("pk").values_list(
        "external_id",
        "member__external_id",
        "amount",
        "placed_at",
        "channel",
        "refunded_amount",
        "status",
    )
    for ext, member, amount, placed, channel, refunded, status in values.iterator(chunk_size=CHUNK):
        placed = timezone.localtime(placed).strftime("%Y-%m-%d %H:%M:%S")
        yield [ext, member or "", amount, placed, channel, refunded, status]
