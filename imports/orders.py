"""The order file: past orders (and their refunds) so that tiers are earned from real history.

Imported orders are the shop's orders (source ``shop``), so a refund the shop reports
later finds them. They earn no points: a migration brings its points as opening
balances. An order already in the database with the same member and amount is left
as it is; with a different one the row is refused.
"""

from __future__ import annotations

from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from membership.models import Member, Order
from membership.services import loads

from .members import flag_duplicates
from .models import ImportJob, Problem, StagedOrder
from .reading import not_in_future, parse_amount, parse_datetime, shown

SOURCE = "shop"
COLUMNS = {
    "external_id": ["order_id", "order id", "external_id", "訂單編號"],
    "member": ["member", "member_external_id", "member id", "會員編號"],
    "amount": ["amount", "金額", "訂單金額"],
    "placed_at": ["placed_at", "time", "date", "訂購時間", "訂單日期"],
    "channel": ["channel", "通路"],
    "refunded_amount": ["refunded_amount", "refund", "refunded", "退款金額"],
}
REQUIRED = ("external_id", "member", "amount", "placed_at")
LABELS = {
    "external_id": _lazy("order id"),
    "member": _lazy("member's external id"),
    "amount": _lazy("amount (NT$)"),
    "placed_at": _lazy("placed at"),
    "channel": _lazy("channel"),
    "refunded_amount": _lazy("refunded (NT$)"),
}
# Text is never cut to fit: a longer cell is a row problem (see members.LIMITS).
LIMITS = {
    "external_id": 64,
    "member": 64,
    "amount": 30,
    "placed_at": 40,
    "channel": 30,
    "refunded_amount": 30,
}


class OrderRows:
    def __init__(self, job: ImportJob):
        self.job = job

    def clean(self, line: int, raw: dict[str, str]):
        errors: list[tuple[str, str]] = []
        staged = StagedOrder(job_id=self.job.pk, line=line, channel=raw.get("channel", ""))
        for key in REQUIRED:
            if not raw.get(key):
                errors.append((key, _("required")))
        staged.external_id = raw.get("external_id", "")
        staged.member_external_id = raw.get("member", "")
        for key in ("amount", "refunded_amount"):
            if value := raw.get(key):
                try:
                    setattr(staged, key, parse_amount(value))
                except ValueError as exc:
                    errors.append((key, str(exc)))
        if value := raw.get("placed_at"):
            try:
                staged.placed_at = parse_datetime(value)
                not_in_future(staged.placed_at)
            except ValueError as exc:
                errors.append(("placed_at", str(exc)))
        if not errors and staged.refunded_amount > staged.amount:
            errors.append(("refunded_amount", _("more than the order's amount")))
        return ([], errors) if errors else ([staged], [])

    def check_across_rows(self) -> None:
        staged = StagedOrder.objects.filter(job=self.job)
        duplicated = (
            staged.values("external_id")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .values_list("external_id", flat=True)
        )
        flag_duplicates(self.job, staged, duplicated)
        member = Member.objects.filter(external_id=OuterRef("member_external_id"))
        unknown = staged.exclude(Exists(member))
        self._refuse(
            unknown.values_list("line", "member_external_id", "member_external_id"),
            "member",
            lambda ref: _("no member with external id %(id)s") % {"id": ref},
        )
        recorded = Order.objects.filter(source=SOURCE, external_id=OuterRef("external_id"))
        clashing = (
            staged.annotate(
                old_amount=Subquery(recorded.values("amount")[:1]),
                old_member=Subquery(recorded.values("member__external_id")[:1]),
            )
            .filter(old_amount__isnull=False)
            .filter(~Q(old_amount=F("amount")) | ~Q(old_member=F("member_external_id")))
        )
        self._refuse(
            clashing.values_list("line", "external_id", "old_amount"),
            "external_id",
            lambda amount: (
                _("already recorded with another member or amount (NT$%(amount)s)")
                % {"amount": f"{amount:,}"}
            ),
        )

    def _refuse(self, rows, column: str, message) -> None:
        problems = [
            Problem(
                job=self.job, line=line, column=column, value=shown(value), message=message(arg)
            )
            for line, value, arg in rows
        ]
        if problems:
            Problem.objects.bulk_create(problems, batch_size=2000)
            StagedOrder.objects.filter(job=self.job, line__in=[p.line for p in problems]).delete()

    def existing(self) -> int:
        recorded = Order.objects.filter(source=SOURCE, external_id=OuterRef("external_id"))
        return StagedOrder.objects.filter(job=self.job).filter(Exists(recorded)).count()

    def write(self, now) -> tuple[int, int]:
        """Through membership's set-based ``loads``, from the staging rows."""
        existing = self.existing()
        staged = StagedOrder.objects.filter(job=self.job)
        created = loads.load_orders(
            staged.values(
                "channel",
                "amount",
                "refunded_amount",
                "placed_at",
                member_ref=F("member_external_id"),
                order_ref=F("external_id"),
            ),
            source=SOURCE,
            at=now,
        )
        loads.refresh_last_order(staged.values(member_ref=F("member_external_id")))
        return created, existing

    def member_ids(self):
        return Member.objects.filter(
            external_id__in=StagedOrder.objects.filter(job=self.job).values("member_external_id")
        ).values_list("pk", flat=True)
