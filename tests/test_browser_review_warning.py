"""The review warning (等級保留提醒) on the member's tier page, in a real browser."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.utils import timezone

from membership import services
from membership.models import Cause, NudgeKind, NudgeOffer
from tests.factories import MemberFactory
from tests.test_browser import PHONE, SHOTS, browser, log_in, shot  # noqa: F401 (browser: a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def gold_member_short_of_retention(demo):
    """王小明 reached 金卡 335 days ago with NT$32,000, which leaves the 12-month window
    before his review in 30 days; NT$22,000 bought since: NT$2,000 short of NT$24,000."""
    user = get_user_model().objects.create_user("xiaoming", password="pw-for-browser-1")
    member = MemberFactory(user=user, name="王小明")
    with time_machine.travel(timezone.now() - dt.timedelta(days=335), tick=False):
        services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
        services.record_order(
            member_id=member.pk, external_id="gold", amount=32_000, placed_at=timezone.now()
        )
    services.record_order(
        member_id=member.pk,
        external_id="recent",
        amount=22_000,
        placed_at=timezone.now() - dt.timedelta(days=20),
    )
    NudgeOffer.objects.create(
        kind=NudgeKind.REVIEW_WARNING, text="保級加碼：審核前 7 天內消費享雙倍點數"
    )
    services.compute_review_warnings()
    member.refresh_from_db()
    return member


def test_a_member_reads_the_review_warning_on_the_tier_page(
    live_server,
    gold_member_short_of_retention,
    browser,  # noqa: F811 (the fixture imported above)
):
    review = gold_member_short_of_retention.next_review_on.isoformat()
    page = browser.new_page(locale="zh-TW", viewport=PHONE)
    log_in(page, live_server.url)

    warning = f"您的等級將於 {review} 審核：在此之前再消費 NT$2,000，即可保留 金卡。"
    assert page.get_by_text(warning).is_visible()
    assert page.get_by_text("保級加碼：審核前 7 天內消費享雙倍點數").is_visible()
    shot(page, "review-warning-zh-hant-phone-full.png")
    # The first screen, as the member sees it on opening the page (the README's picture).
    page.screenshot(path=str(SHOTS / "review-warning-zh-hant-phone.png"))
