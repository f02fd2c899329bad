"""The member file: columns, the check of one row, the checks across rows, the write.

Writing is set-based, through the owning apps' services: membership's ``loads`` upserts
the members by external id, tags them, records the opening spends (as orders) and, one
statement per tier, the opening tiers (as tier grants until the first review); the
points ledger's ``earn_many`` posts the opening points; then every imported member is
evaluated set-based.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import BigIntegerField, CharField, Count, DateTimeField, F, Min, Value
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.utils.translation import pgettext_lazy

from membership.models import Member, Tag, Tier
from membership.services import loads
from membership.services.rules import add_months, local_midnight

from . import opening_points
from .models import ImportJob, Problem, StagedMember, StagedTag
from .opening_points import SOURCE
from .reading import normalise_phone, not_in_future, parse_amount, parse_date, shown

COLUMNS = {
    "external_id": ["external_id", "external id", "外部編號", "會員編號"],
    "name": ["name", "姓名", "名稱"],
    "phone": ["phone", "mobile", "手機", "電話"],
    "email": ["email", "e-mail", "電子郵件", "信箱"],
    "birthday": ["birthday", "生日"],
    "tags": ["tags", "標籤"],
    "joined_at": ["joined_at", "joined", "加入日期", "入會日期"],
    "opening_spend": ["opening_spend", "opening spend", "累積消費", "期初消費"],
    "opening_tier": ["opening_tier", "tier", "opening tier", "等級", "期初等級"],
    "opening_points": ["opening_points", "points", "opening points", "點數", "期初點數"],
}
REQUIRED = ("external_id", "name")
# What each column is called on the upload page.
LABELS = {
    "external_id": _lazy("external id"),
    "name": pgettext_lazy("person", "name"),
    "phone": _lazy("phone"),
    "email": _lazy("e-mail"),
    "birthday": _lazy("birthday"),
    "tags": _lazy("tags"),
    "joined_at": _lazy("joined at"),
    "opening_spend": _lazy("opening spend (NT$)"),
    "opening_tier": _lazy("opening tier"),
    "opening_points": _lazy("opening points"),
}
# The most characters a cell may have: its column's size where it is stored as written,
# a bound well above any valid value where it is read into something else.
LIMITS = {
    "external_id": 64,
    "name": 100,
    "phone": 30,
    "email": 254,
    "birthday": 30,
    "tags": 1000,
    "joined_at": 30,
    "opening_spend": 30,
    "opening_tier": 101,
    "opening_points": 30,
}
TAG_SPLIT = re.compile(r"[,;|、，]")


class MemberRows:
    """Checks one member row at a time against what the database already holds."""

    def __init__(self, job: ImportJob):
        self.job = job
        self.tags = set(Tag.objects.values_list("name", flat=True))
        self.tiers: dict[str, list[Tier]] = {}
        for tier in Tier.objects.select_related("group"):
            self.tiers.setdefault(tier.name, []).append(tier)
            self.tiers.setdefault(f"{tier.group.name}/{tier.name}", []).append(tier)

    def clean(self, line: int, raw: dict[str, str]):
        errors: list[tuple[str, str]] = []
        staged = StagedMember(job_id=self.job.pk, line=line)
        for key in REQUIRED:
            setattr(staged, key, raw.get(key, ""))
            if not raw.get(key):
                errors.append((key, _("required")))
        if phone := raw.get("phone"):
            try:
                staged.phone = normalise_phone(phone)
            except ValueError as exc:
                errors.append(("phone", str(exc)))
        if email := raw.get("email"):
            try:
                validate_email(email)
                staged.email = email.lower()
            except ValidationError:
                errors.append(("email", _("not an e-mail address")))
        if value := raw.get("birthday"):
            try:
                staged.birthday = parse_date(value)
                not_in_future(staged.birthday)
            except ValueError as exc:
                errors.append(("birthday", str(exc)))
        if value := raw.get("joined_at"):
            try:
                day = parse_date(value)
                not_in_future(day)
                staged.joined_at = local_midnight(day)
            except ValueError as exc:
                errors.append(("joined_at", str(exc)))
        for key in ("opening_spend", "opening_points"):
            if value := raw.get(key):
                try:
                    setattr(staged, key, parse_amount(value))
                except ValueError as exc:
                    errors.append((key, str(exc)))
        if value := raw.get("opening_tier"):
            found = self.tiers.get(value.replace(" / ", "/"), [])
            if len(found) == 1:
                staged.opening_tier = found[0]
            elif found:
                errors.append(("opening_tier", _("several groups have this tier: write 群組/等級")))
            else:
                errors.append(("opening_tier", _("no such tier")))
        names = list(dict.fromkeys(t.strip() for t in TAG_SPLIT.split(raw.get("tags", ""))))
        names = [n for n in names if n]
        unknown = [n for n in names if n not in self.tags]
        if unknown and not self.job.allow_new_tags:
            errors.append(("tags", _("unknown tags: %(tags)s") % {"tags": ", ".join(unknown)}))
        if any(len(n) > 50 for n in names):
            errors.append(("tags", _("a tag is longer than 50 characters")))
        if errors:
            return [], errors
        tags = [
            StagedTag(job_id=self.job.pk, external_id=staged.external_id, name=n) for n in names
        ]
        return [staged, *tags], []

    def check_across_rows(self) -> None:
        """Duplicated external ids, and opening points that differ from an earlier import."""
        staged = StagedMember.objects.filter(job=self.job)
        duplicated = (
            staged.values("external_id")
            .annotate(n=Count("id"), first=Min("line"))
            .filter(n__gt=1)
            .values_list("external_id", flat=True)
        )
        flag_duplicates(self.job, staged, duplicated, StagedTag)
        opening_points.check(self.job)

    def existing(self) -> int:
        return (
            StagedMember.objects.filter(job=self.job)
            .filter(external_id__in=Member.objects.values("external_id"))
            .count()
        )

    def write(self, now) -> tuple[int, int]:
        """Through membership's and points' set-based services, from the staging rows."""
        job = self.job
        updated = self.existing()
        staged = StagedMember.objects.filter(job=job)
        created = staged.count() - updated
        loads.upsert_members(
            staged.values("external_id", "name", "phone", "email", "birthday", "joined_at"),
            at=now,
        )
        loads.tag_members(
            StagedTag.objects.filter(job=job).values(member_ref=F("external_id"), tag=F("name")),
            at=now,
        )
        # The spend before the migration, as one order placed at the import, so it counts
        # in the current window; idempotent on its external id.
        loads.load_orders(
            staged.filter(opening_spend__gt=0).values(
                member_ref=F("external_id"),
                order_ref=Concat(Value("opening:"), F("external_id"), output_field=CharField()),
                channel=Value("opening", output_field=CharField()),
                amount=F("opening_spend"),
                refunded_amount=Value(0, output_field=BigIntegerField()),
                placed_at=Value(now, output_field=DateTimeField()),
            ),
            source=SOURCE,
            at=now,
        )
        # The tier the old system gave is held until the first review, then the rules apply.
        for tier_id in (
            staged.filter(opening_tier__isnull=False)
            .values_list("opening_tier", flat=True)
            .distinct()
        ):
            tier = Tier.objects.select_related("group").get(pk=tier_id)
            loads.grant_tiers(
                staged.filter(opening_tier=tier).values(
                    member_ref=F("external_id"), source_ref=F("external_id")
                ),
                tier=tier,
                starts_at=now,
                ends_at=local_midnight(
                    add_months(timezone.localdate(now), tier.group.review_period_months)
                ),
                source=SOURCE,
            )
        opening_points.post(job, now)
        return created, updated

    def member_ids(self):
        return Member.objects.filter(
            external_id__in=StagedMember.objects.filter(job=self.job).values("external_id")
        ).values_list("pk", flat=True)


def flag_duplicates(job, staged, duplicated, *extra_staged) -> None:
    """Every row of a duplicated id is bad: which one is right is the operator's call."""
    problems, ids = [], set()
    for external_id in duplicated.iterator(chunk_size=2000):
        ids.add(external_id)
        lines = sorted(staged.filter(external_id=external_id).values_list("line", flat=True))
        for line in lines:
            others = ", ".join(str(n) for n in lines if n != line)
            problems.append(
                Problem(
                    job=job,
                    line=line,
                    column="external_id",
                    value=shown(external_id),
                    message=_("%(id)s is also on line %(lines)s")
                    % {"id": external_id, "lines": others},
                )
            )
    if problems:
        Problem.objects.bulk_create(problems, batch_size=2000)
        staged.filter(external_id__in=ids).delete()
        for model in extra_staged:
            model.objects.filter(job=job, external_id__in=ids).delete()
