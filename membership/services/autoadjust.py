"""Auto-adjust (seed 000): a monthly job measures each group and turns the merchant's
rules into proposals — a draft programme version with its impact preview — that an
operator approves or rejects, or that publish themselves when auto-apply is on and the
step needed no clipping. Never beyond ``bound_percent`` of the rule's base version;
one proposal per rule and period (a unique row); every step audited. A rule that only
notifies (the renewal rate) flags the measure and proposes nothing.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.models import (
    AdjustProposal,
    AdjustRule,
    Member,
    TierHistory,
    VipGroup,
)

from . import versions
from .audit import record_audit
from .preview import preview
from .rules import add_months, local_midnight

HUNDRED = Decimal(100)

# The seed's three rules, the defaults a new programme gets.
DEFAULT_RULES = [
    {
        "name": "VIP 佔比過高：門檻上調",
        "measure": AdjustRule.Measure.VIP_SHARE,
        "compare": AdjustRule.Compare.ABOVE,
        "trigger_percent": Decimal(40),
        "step_percent": Decimal(10),
        "frequency": AdjustRule.Frequency.QUARTERLY,
    },
    {
        "name": "升等率過低：門檻下調",
        "measure": AdjustRule.Measure.UPGRADE_RATE,
        "compare": AdjustRule.Compare.BELOW,
        "trigger_percent": Decimal(3),
        "step_percent": Decimal(-10),
        "frequency": AdjustRule.Frequency.MONTHLY,
    },
    {
        "name": "續約率過低：檢視條件",
        "measure": AdjustRule.Measure.RENEWAL_RATE,
        "compare": AdjustRule.Compare.BELOW,
        "trigger_percent": Decimal(60),
        "step_percent": Decimal(0),
        "frequency": AdjustRule.Frequency.MONTHLY,
        "notify_only": True,
    },
]


def ensure_default_rules() -> None:
    for rule in DEFAULT_RULES:
        AdjustRule.objects.get_or_create(name=rule["name"], defaults=rule)


def period_of(rule: AdjustRule, today: dt.date) -> str:
    if rule.frequency == AdjustRule.Frequency.QUARTERLY:
        return f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    return f"{today:%Y-%m}"


def _months(rule: AdjustRule) -> int:
    return 3 if rule.frequency == AdjustRule.Frequency.QUARTERLY else 1


def _percent(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * HUNDRED / whole).quantize(Decimal("0.1"), ROUND_HALF_UP)


def group_measures(measure: str, *, now: dt.datetime, months: int) -> dict[int, Decimal | None]:
    """Each group's measure, in percent: the VIP share today, or the upgrade or renewal
    rate over the last ``months``."""
    start = local_midnight(add_months(timezone.localdate(now), -months))
    members = dict(
        Member.objects.filter(tier_holder__isnull=True, group__isnull=False)
        .values_list("group_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    if measure == AdjustRule.Measure.VIP_SHARE:
        above = dict(
            Member.objects.filter(tier_holder__isnull=True, earned_tier__rank__gt=1)
            .values_list("group_id")
            .annotate(n=Count("id"))
            .order_by()
        )
        return {g: _percent(above.get(g, 0), n) for g, n in members.items()}
    if measure == AdjustRule.Measure.UPGRADE_RATE:
        up = dict(
            TierHistory.objects.filter(created_at__gte=start, to_group_id=F("from_group_id"))
            .filter(Q(from_tier__isnull=True) | Q(to_tier__rank__gt=F("from_tier__rank")))
            .filter(to_tier__isnull=False)
            .values_list("to_group_id")
            .annotate(n=Count("member_id", distinct=True))
            .order_by()
        )
        return {g: _percent(up.get(g, 0), n) for g, n in members.items()}
    from subscriptions.models import ChargeAttempt

    answered = ChargeAttempt.objects.filter(answered_at__gte=start).exclude(
        result=ChargeAttempt.Result.PENDING
    )
    rates = {}
    for group_id in VipGroup.objects.values_list("id", flat=True):
        periods = answered.filter(subscription__plan__tier__group_id=group_id)
        tried = periods.values("subscription_id", "period_start").distinct().count()
        renewed = (
            periods.filter(result=ChargeAttempt.Result.SUCCEEDED)
            .values("subscription_id", "period_start")
            .distinct()
            .count()
        )
        rates[group_id] = _percent(renewed, tried)
    return rates


def _triggered(rule: AdjustRule, value: Decimal | None) -> bool:
    if value is None:
        return False
    if rule.compare == AdjustRule.Compare.ABOVE:
        return value > rule.trigger_percent
    return value < rule.trigger_percent


def stepped(current: int, base: int, *, step: Decimal, bound: Decimal) -> tuple[int, bool]:
    """``current`` moved by ``step`` percent, clipped to ``base`` ± ``bound`` percent;
    and whether it was clipped."""
    target = Decimal(current) * (HUNDRED + step) / HUNDRED
    low = Decimal(base) * (HUNDRED - bound) / HUNDRED
    high = Decimal(base) * (HUNDRED + bound) / HUNDRED
    clipped = min(max(target, low), high)
    return int(clipped.quantize(Decimal(1), ROUND_HALF_UP)), clipped != target


def run_auto_adjust(*, now: dt.datetime | None = None) -> list[AdjustProposal]:
    """The monthly job: one proposal per triggered rule and period. Safe to run twice."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    made = []
    for rule in AdjustRule.objects.filter(active=True):
        if rule.frequency == AdjustRule.Frequency.QUARTERLY and today.month % 3 != 1:
            continue  # a quarterly rule acts in a quarter's first month
        period = period_of(rule, today)
        if AdjustProposal.objects.filter(rule=rule, period=period).exists():
            continue
        values = group_measures(rule.measure, now=now, months=_months(rule))
        hits = {g: v for g, v in values.items() if _triggered(rule, v)}
        if not hits:
            continue
        proposal = _propose(rule, period, values, hits, now)
        if proposal is not None:
            made.append(proposal)
    return made


def _propose(rule, period, values, hits, now) -> AdjustProposal | None:
    names = dict(VipGroup.objects.values_list("id", "name"))
    measures = {names[g]: str(v) for g, v in values.items() if v is not None}
    try:
        with transaction.atomic():
            proposal = AdjustProposal.objects.create(
                rule=rule,
                period=period,
                measures=measures,
                status=AdjustProposal.Status.PROPOSED,
                created_at=now,
            )
            if rule.notify_only:
                proposal.status = AdjustProposal.Status.NOTIFIED
                proposal.note = ", ".join(f"{names[g]} {v}%" for g, v in hits.items())
                proposal.save(update_fields=["status", "note"])
                record_audit(actor=None, action="adjustproposal.notify", obj=proposal)
                return proposal
            if rule.base_version is None:
                rule.base_version = versions.ensure_live_version()
                rule.save(update_fields=["base_version"])
            draft = versions.create_draft(actor=None, name=f"{rule.name} {period}")
            base = {
                t.tier_id: t for t in rule.base_version.thresholds.filter(tier__group_id__in=hits)
            }
            any_clipped = False
            for row in draft.thresholds.filter(tier__group_id__in=hits, upgrade_threshold__gt=0):
                was = base.get(row.tier_id, row)
                up, c1 = stepped(
                    row.upgrade_threshold,
                    was.upgrade_threshold,
                    step=rule.step_percent,
                    bound=rule.bound_percent,
                )
                keep, c2 = stepped(
                    row.retention_threshold,
                    was.retention_threshold,
                    step=rule.step_percent,
                    bound=rule.bound_percent,
                )
                row.upgrade_threshold, row.retention_threshold = up, min(keep, up)
                row.save(update_fields=["upgrade_threshold", "retention_threshold"])
                any_clipped = any_clipped or c1 or c2
            proposal.draft = draft
            proposal.note = "clipped" if any_clipped else ""
            proposal.save(update_fields=["draft", "note"])
            record_audit(
                actor=None,
                action="adjustproposal.propose",
                obj=proposal,
                after={"draft": draft.number, "measures": measures, "clipped": any_clipped},
            )
    except IntegrityError:
        return None  # another run made this period's proposal first
    result = preview(draft, now=now, explain=False)
    proposal.measures = measures | {
        "preview": {"up": result.up, "down": result.down, "group": result.group_changes}
    }
    proposal.save(update_fields=["measures"])
    if rule.auto_apply and not any_clipped and not versions.ladder_errors(draft):
        versions.schedule(draft, actor=None, now=now)
        proposal.status = AdjustProposal.Status.APPLIED
        proposal.save(update_fields=["status"])
        record_audit(actor=None, action="adjustproposal.apply", obj=proposal)
    return proposal


def _awaiting(proposal: AdjustProposal) -> None:
    if proposal.status != AdjustProposal.Status.PROPOSED:
        raise ValidationError(_("Only a proposal awaiting approval can be approved or rejected."))


def approve(proposal: AdjustProposal, *, actor, now: dt.datetime | None = None) -> None:
    _awaiting(proposal)
    with transaction.atomic():
        versions.schedule(proposal.draft, actor=actor, now=now)
        proposal.status = AdjustProposal.Status.APPROVED
        proposal.save(update_fields=["status"])
        record_audit(actor=actor, action="adjustproposal.approve", obj=proposal)


def reject(proposal: AdjustProposal, *, actor, reason: str = "") -> None:
    _awaiting(proposal)
    with transaction.atomic():
        versions.reject(proposal.draft, actor=actor, reason=reason)
        proposal.status = AdjustProposal.Status.REJECTED
        proposal.save(update_fields=["status"])
        record_audit(actor=actor, action="adjustproposal.reject", obj=proposal, reason=reason)
