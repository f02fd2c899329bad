"""Auto-adjust: measures per group, proposals as drafts, bounds, one per rule and period."""

import datetime as dt
from decimal import Decimal

import pytest

from membership import services
from membership.models import AdjustProposal, AdjustRule, AuditEntry, ProgrammeVersion
from membership.services import autoadjust, versions
from tests.factories import MemberFactory, OrderFactory, UserFactory

TAIPEI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 7, 1, 9, 0, tzinfo=TAIPEI)  # a quarter's first month

pytestmark = pytest.mark.usefixtures("frozen_clock")


@pytest.fixture
def forty_five_percent_vip(programme):
    """20 全館 VIP members: 9 at 銀卡 (NT$12,000), 11 at 一般會員 (NT$1,000) — 45 % VIP."""
    for amount in [12_000] * 9 + [1_000] * 11:
        member = MemberFactory()
        OrderFactory(member=member, amount=amount, placed_at=NOW - dt.timedelta(days=200))
    services.recompute_members(now=NOW - dt.timedelta(days=100))
    autoadjust.ensure_default_rules()
    return programme


def vip_rule() -> AdjustRule:
    return AdjustRule.objects.get(measure=AdjustRule.Measure.VIP_SHARE)


def draft_thresholds(proposal) -> dict[str, tuple[int, int]]:
    return {
        t.tier.name: (t.upgrade_threshold, t.retention_threshold)
        for t in proposal.draft.thresholds.filter(tier__group__is_default=True)
    }


def test_at_45_percent_vip_share_the_proposal_raises_thresholds_by_10_percent(
    forty_five_percent_vip,
):
    proposal = next(p for p in autoadjust.run_auto_adjust(now=NOW) if p.rule == vip_rule())

    assert proposal.measures["全館 VIP"] == "45.0"
    assert draft_thresholds(proposal)["銀卡"] == (11_000, 8_800)
    assert draft_thresholds(proposal)["金卡"] == (33_000, 26_400)
    assert proposal.status == AdjustProposal.Status.PROPOSED
    assert proposal.draft.status == ProgrammeVersion.Status.DRAFT


def test_a_proposal_beyond_its_bound_is_clipped(forty_five_percent_vip):
    AdjustRule.objects.filter(pk=vip_rule().pk).update(bound_percent=Decimal(5))

    proposal = next(p for p in autoadjust.run_auto_adjust(now=NOW) if p.rule == vip_rule())

    assert draft_thresholds(proposal)["銀卡"] == (10_500, 8_400)
    assert proposal.note == "clipped"


def test_one_proposal_per_rule_and_period(forty_five_percent_vip):
    autoadjust.run_auto_adjust(now=NOW)
    again = autoadjust.run_auto_adjust(now=NOW + dt.timedelta(days=3))

    assert again == []
    assert AdjustProposal.objects.filter(rule=vip_rule()).count() == 1


def test_auto_apply_publishes_a_proposal_within_bounds_for_two_days_later(
    forty_five_percent_vip,
):
    AdjustRule.objects.filter(pk=vip_rule().pk).update(auto_apply=True)

    proposal = next(p for p in autoadjust.run_auto_adjust(now=NOW) if p.rule == vip_rule())

    assert proposal.status == AdjustProposal.Status.APPLIED
    proposal.draft.refresh_from_db()
    assert proposal.draft.status == ProgrammeVersion.Status.SCHEDULED
    assert proposal.draft.effective_from == dt.datetime(2026, 7, 3, tzinfo=TAIPEI)


def test_an_operator_approves_or_rejects_a_proposal_and_it_is_audited(forty_five_percent_vip):
    operator = UserFactory(username="營運小美")
    proposal = next(p for p in autoadjust.run_auto_adjust(now=NOW) if p.rule == vip_rule())

    autoadjust.reject(proposal, actor=operator, reason="旺季再議")

    proposal.draft.refresh_from_db()
    assert proposal.draft.status == ProgrammeVersion.Status.REJECTED
    assert AuditEntry.objects.filter(action="adjustproposal.reject", actor=operator).exists()
    assert versions.live_version().number == 1


def test_the_renewal_rate_rule_only_notifies(forty_five_percent_vip, monkeypatch):
    rule = AdjustRule.objects.get(measure=AdjustRule.Measure.RENEWAL_RATE)
    AdjustRule.objects.exclude(pk=rule.pk).update(active=False)
    general = forty_five_percent_vip.general
    monkeypatch.setattr(
        autoadjust, "group_measures", lambda measure, **kw: {general.pk: Decimal(50)}
    )

    (proposal,) = autoadjust.run_auto_adjust(now=NOW)

    assert proposal.status == AdjustProposal.Status.NOTIFIED
    assert proposal.draft is None
    assert "全館 VIP 50" in proposal.note
    assert ProgrammeVersion.objects.filter(status=ProgrammeVersion.Status.DRAFT).count() == 0


def test_the_vip_share_is_members_above_the_base_tier(forty_five_percent_vip):
    general = forty_five_percent_vip.general

    shares = autoadjust.group_measures(AdjustRule.Measure.VIP_SHARE, now=NOW, months=3)

    assert shares[general.pk] == Decimal("45.0")
