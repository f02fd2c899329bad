"""Programme versions: drafts, diff, preview, publishing from a date, seasonal end."""

import datetime as dt
import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse

from membership import services
from membership.models import (
    Cause,
    GiftIssue,
    Member,
    ProgrammeVersion,
    Tier,
    TierHistory,
    VersionSwitch,
)
from membership.selectors import calculate_tier
from membership.services import preview as preview_service
from membership.services import versions
from membership.services.preview import DOWN, GROUP, UP, chart_svg, preview
from tests.factories import MemberFactory, OrderFactory, UserFactory

TAIPEI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=TAIPEI)
ON_THE_DAY = dt.datetime(2026, 6, 17, 0, 0, tzinfo=TAIPEI)

pytestmark = pytest.mark.usefixtures("frozen_clock")


def spender(amount: int, *, days_ago: int = 10) -> Member:
    member = MemberFactory()
    OrderFactory(member=member, amount=amount, placed_at=NOW - dt.timedelta(days=days_ago))
    return member


def set_thresholds(draft, tier, up: int, keep: int) -> None:
    draft.thresholds.filter(tier=tier).update(upgrade_threshold=up, retention_threshold=keep)


@pytest.fixture
def operator(db):
    return UserFactory(username="營運小美")


@pytest.fixture
def members(programme):
    """9,000 (一般會員, within reach of a lowered 銀卡) and 12,000 (銀卡, under a raised one)."""
    near, silver = spender(9_000), spender(12_000)
    services.recompute_members()
    return near, silver


@pytest.fixture
def draft(programme, members, operator):
    """銀卡 lowered from 10,000 to 8,500; 金卡 raised from 30,000 / 24,000 to 40,000 / 32,000."""
    draft = versions.create_draft(actor=operator, name="夏季門檻")
    set_thresholds(draft, programme.tiers["銀卡"], 8_500, 8_000)
    set_thresholds(draft, programme.tiers["金卡"], 40_000, 32_000)
    return draft


def tier_of(member) -> str | None:
    member.refresh_from_db()
    return member.earned_tier.name if member.earned_tier else None


def test_the_first_draft_makes_todays_programme_the_live_version(programme, operator):
    draft = versions.create_draft(actor=operator)
    live = versions.live_version()
    assert (live.number, draft.number, draft.copied_from) == (1, 2, live)
    assert live.thresholds.get(tier=programme.tiers["金卡"]).upgrade_threshold == 30_000


def test_the_diff_says_each_changed_threshold_in_words(draft, english):
    assert versions.diff(draft) == [
        "全館 VIP · 銀卡: upgrade threshold 10,000 → 8,500",
        "全館 VIP · 金卡: upgrade threshold 30,000 → 40,000",
        "全館 VIP · 金卡: retention threshold 24,000 → 32,000",
    ]


def test_a_draft_published_for_two_days_later_changes_nothing_before_then(
    draft, members, operator, django_capture_on_commit_callbacks
):
    near, _silver = members
    scheduled = versions.schedule(draft, actor=operator, now=NOW)
    assert scheduled.version.effective_from == ON_THE_DAY
    with django_capture_on_commit_callbacks(execute=True):
        assert versions.switch_due_versions(now=ON_THE_DAY - dt.timedelta(minutes=1)) == []
    assert tier_of(near) == "一般會員"
    assert Tier.objects.get(name="銀卡").upgrade_threshold == 10_000
    assert versions.live_version().number == 1


def test_on_the_day_a_lowered_threshold_upgrades_and_names_version_and_publisher(
    draft, members, operator, django_capture_on_commit_callbacks
):
    near, silver = members
    versions.schedule(draft, actor=operator, now=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        assert versions.switch_due_versions(now=ON_THE_DAY) == [draft.pk]
    assert (tier_of(near), tier_of(silver)) == ("銀卡", "銀卡")
    row = TierHistory.objects.get(member=near, cause=Cause.VERSION)
    assert (row.actor, row.explanation["version"]) == (operator, draft.number)


def test_a_raised_retention_threshold_downgrades_nobody_until_their_review(
    programme, members, operator, django_capture_on_commit_callbacks
):
    _near, silver = members
    draft = versions.create_draft(actor=operator)
    set_thresholds(draft, programme.tiers["銀卡"], 15_000, 13_000)
    versions.schedule(draft, actor=operator, now=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        versions.switch_due_versions(now=ON_THE_DAY)
    assert tier_of(silver) == "銀卡"
    review = dt.datetime.combine(silver.next_review_on, dt.time(3), tzinfo=TAIPEI)
    services.review_due_members(now=review - dt.timedelta(days=1))
    assert tier_of(silver) == "銀卡"
    OrderFactory(member=silver, amount=1, placed_at=review - dt.timedelta(days=30))
    services.review_due_members(now=review)
    assert tier_of(silver) == "一般會員"  # 12,001 within the window, under 13,000


def test_a_switch_runs_once_however_often_the_job_runs(
    draft, operator, django_capture_on_commit_callbacks
):
    versions.schedule(draft, actor=operator, now=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        versions.switch_due_versions(now=ON_THE_DAY)
        assert versions.switch_due_versions(now=ON_THE_DAY + dt.timedelta(minutes=1)) == []
    assert VersionSwitch.objects.filter(version=draft).count() == 1
    assert services.recompute_members(now=ON_THE_DAY).changed == 0


def test_a_seasonal_version_reverts_on_its_end_date(
    programme, members, operator, django_capture_on_commit_callbacks
):
    near, _silver = members
    q1 = versions.create_draft(actor=operator, name="Q1 淡季")
    set_thresholds(q1, programme.tiers["銀卡"], 8_000, 8_000)
    set_thresholds(q1, programme.tiers["金卡"], 25_000, 24_000)
    versions.schedule(q1, actor=operator, now=NOW, ends_on=dt.date(2026, 7, 1))
    with django_capture_on_commit_callbacks(execute=True):
        versions.switch_due_versions(now=ON_THE_DAY)
    with django_capture_on_commit_callbacks(execute=True):
        versions.switch_due_versions(now=dt.datetime(2026, 6, 30, 23, 59, tzinfo=TAIPEI))
    assert Tier.objects.get(name="銀卡").upgrade_threshold == 8_000
    with django_capture_on_commit_callbacks(execute=True):
        versions.switch_due_versions(now=dt.datetime(2026, 7, 1, 0, 0, tzinfo=TAIPEI))
    assert versions.live_version().number == 1
    assert Tier.objects.get(name="金卡").upgrade_threshold == 30_000
    q1.refresh_from_db()
    assert q1.status == ProgrammeVersion.Status.ENDED
    assert tier_of(near) == "銀卡"  # upgraded in Q1; the restored threshold downgrades nobody


def test_the_preview_finds_the_movements_the_publish_makes(
    programme, operator, django_capture_on_commit_callbacks
):
    for amount in (8_600, 8_700, 9_900, 12_000, 35_000, 45_000):
        spender(amount)
    services.recompute_members()
    draft = versions.create_draft(actor=operator)
    set_thresholds(draft, programme.tiers["銀卡"], 8_500, 8_000)
    set_thresholds(draft, programme.tiers["金卡"], 40_000, 38_000)
    result = preview(draft, actor=operator, now=ON_THE_DAY)
    previewed = Counter()
    for move in result.movements:
        if move.kind in (UP, GROUP):
            previewed[(move.from_tier, move.to_tier)] += move.count
    versions.schedule(draft, actor=operator, now=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        versions.switch_due_versions(now=ON_THE_DAY)
    published = Counter(
        (h.from_tier.name, h.to_tier.name)
        for h in TierHistory.objects.filter(cause=Cause.VERSION).select_related(
            "from_tier", "to_tier"
        )
    )
    assert previewed == published == Counter({("一般會員", "銀卡"): 3})
    assert result.gifts == 3
    assert result.emails == 3
    # 35,000 stays 金卡 until review, where 38,000 is no longer met
    assert [(m.from_tier, m.to_tier, m.count) for m in result.movements if m.kind == DOWN] == [
        ("金卡", "銀卡", 1)
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_preview_read_on_two_connections_finds_what_one_connection_finds(
    programme, operator, settings, monkeypatch
):
    for amount in (8_600, 8_700, 9_900, 12_000, 35_000, 45_000):
        spender(amount)
    services.recompute_members()
    draft = versions.create_draft(actor=operator)
    set_thresholds(draft, programme.tiers["銀卡"], 8_500, 8_000)
    set_thresholds(draft, programme.tiers["金卡"], 40_000, 38_000)
    threads = set()
    read_apart = preview_service._read_chunk_apart

    def spy(*args):
        threads.add(threading.get_ident())
        return read_apart(*args)

    monkeypatch.setattr(preview_service, "_read_chunk_apart", spy)

    def moves(result):
        return [(m.kind, m.from_tier, m.to_tier, m.count, m.gifts) for m in result.movements]

    settings.PREVIEW_WORKERS = 2
    apart = moves(preview(draft, now=ON_THE_DAY, chunk=2, explain=False))
    settings.PREVIEW_WORKERS = 1
    together = moves(preview(draft, now=ON_THE_DAY, chunk=2, explain=False))
    assert len(threads) == 2
    assert apart == together == [(UP, "一般會員", "銀卡", 3, 3), (DOWN, "金卡", "銀卡", 1, 0)]


def test_the_preview_writes_nothing_but_its_audit_entry(draft, operator):
    before = list(Member.objects.values_list("id", "earned_tier_id", "next_review_on"))
    gifts, history = GiftIssue.objects.count(), TierHistory.objects.count()
    assert preview(draft, actor=operator, now=ON_THE_DAY).up == 1
    assert list(Member.objects.values_list("id", "earned_tier_id", "next_review_on")) == before
    assert (GiftIssue.objects.count(), TierHistory.objects.count()) == (gifts, history)


def test_the_preview_explains_each_sample_under_the_draft(draft, members, operator):
    near, _ = members
    move = next(m for m in preview(draft, now=ON_THE_DAY).movements if m.kind == UP)
    sample = move.samples[0]
    assert sample["member"] == near
    assert sample["explanation"]["earned"] == "銀卡"
    assert {"tier": "銀卡", "upgrade": 8_500}.items() <= sample["explanation"]["thresholds"][
        1
    ].items()


def test_the_preview_chart_shows_todays_mix_against_the_drafts(draft, english):
    svg = chart_svg(preview(draft, now=ON_THE_DAY))
    assert "Today" in svg
    assert "Right after publishing" in svg
    assert "全館 VIP · 銀卡" in svg


def test_the_calculator_can_run_on_a_draft(draft, members):
    near, _ = members
    live = calculate_tier(near, amount=0, on=NOW.date())
    what_if = calculate_tier(near, amount=0, on=NOW.date(), version=draft)
    assert (live.earned.name, what_if.earned.name) == ("一般會員", "銀卡")


def test_a_broken_ladder_is_refused_at_publishing(programme, operator):
    draft = versions.create_draft(actor=operator)
    set_thresholds(draft, programme.tiers["金卡"], 9_000, 8_000)
    with pytest.raises(ValidationError, match="金卡"):
        versions.schedule(draft, actor=operator, now=NOW)


def test_only_a_draft_can_be_published(draft, operator):
    versions.schedule(draft, actor=operator, now=NOW)
    with pytest.raises(ValidationError):
        versions.schedule(draft, actor=operator, now=NOW)


def test_publishing_now_makes_the_version_live_at_once(
    draft, members, operator, django_capture_on_commit_callbacks
):
    near, _ = members
    with django_capture_on_commit_callbacks(execute=True):
        scheduled = versions.schedule(draft, actor=operator, effective_from=NOW, now=NOW)
    assert scheduled.went_live
    assert tier_of(near) == "銀卡"


def test_the_audit_log_keeps_drafted_previewed_approved_and_published(
    draft, operator, django_capture_on_commit_callbacks
):
    from membership.models import AuditEntry

    preview(draft, actor=operator, now=NOW)
    versions.schedule(draft, actor=operator, now=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        versions.switch_due_versions(now=ON_THE_DAY)
    actions = AuditEntry.objects.filter(object_id=str(draft.pk)).order_by("id")
    assert [(a.action, a.actor) for a in actions] == [
        ("programmeversion.draft", operator),
        ("programmeversion.preview", operator),
        ("programmeversion.approve", operator),
        ("programmeversion.publish", operator),
    ]


def test_the_admin_calculator_runs_on_a_draft(draft, members, admin_client):
    near, _ = members
    url = reverse("admin:membership_member_calculator", args=[near.pk])
    query = {"amount": 0, "on": NOW.date().isoformat()}

    live = admin_client.get(url, query).context["result"]
    what_if = admin_client.get(url, query | {"version": draft.pk}).context["result"]

    assert (live.earned.name, what_if.earned.name) == ("一般會員", "銀卡")


def test_the_members_calculator_offers_a_scheduled_version_but_never_a_draft(
    draft, members, operator, client
):
    near, _ = members
    near.user = get_user_model().objects.create_user("near", password="pw-near-1")
    near.save()
    client.force_login(near.user)
    url = reverse("members:calculator")
    query = {"amount": 0, "on": NOW.date().isoformat(), "version": draft.pk}
    assert "version" not in client.get(url, query).context["form"].fields

    versions.schedule(draft, actor=operator, now=NOW)

    assert client.get(url, query).context["result"].earned.name == "銀卡"
