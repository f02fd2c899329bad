"""Programme versions in Chromium at 1,366 px: an operator drafts a threshold change,
reads the impact preview's counts and chart, and publishes it for two days later."""

import datetime as dt
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from membership import services
from membership.models import ProgrammeVersion, Tier
from tests.factories import MemberFactory, OrderFactory
from tests.test_browser import SHOTS, browser, shot  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 768}
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def operator_page(live_server, browser, demo):  # noqa: F811 (the fixture imported above)
    # Four 全館 VIP members between a lowered 銀卡 (9,000) and today's (10,000).
    for amount in (9_100, 9_400, 9_700, 9_900):
        member = MemberFactory()
        OrderFactory(member=member, amount=amount, placed_at=timezone.now() - dt.timedelta(days=5))
    services.recompute_members()
    user = get_user_model().objects.create_superuser("boss", password="pw-for-browser-1")
    client = Client()
    client.force_login(user)
    context = browser.new_context(locale="zh-TW", viewport=LAPTOP)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    return context.new_page()


def test_the_operator_drafts_previews_and_publishes_for_two_days_later(live_server, operator_page):
    page = operator_page
    page.goto(f"{live_server.url}/admin/membership/programmeversion/add/")
    page.locator("#id_name").fill("秋季銀卡門檻")
    page.locator("input[name=_save]").click()
    draft = ProgrammeVersion.objects.get(name="秋季銀卡門檻")

    silver = Tier.objects.get(group__is_default=True, name="銀卡")
    row = page.locator("#thresholds-group tr.has_original").filter(has_text="全館 VIP · 銀卡")
    row.locator("input[name$=upgrade_threshold]").fill("9000")
    page.locator("input[name=_continue]").click()
    assert "全館 VIP · 銀卡：升等門檻 10,000 → 9,000" in page.locator(".version-diff").inner_text()

    page.locator("#open-preview").click()
    assert page.locator("#preview-totals td.up").inner_text() == "4"
    assert page.locator("#preview-totals td.gifts").inner_text() == "4"
    chart = page.locator("#preview-chart")
    chart.scroll_into_view_if_needed()
    # The chart is its own request (the preview again); the page's CSP rules out
    # wait_for_function's eval, so poll from here.
    width = "document.getElementById('preview-chart').naturalWidth"
    for _ in range(300):
        if page.evaluate(width) > 0:
            break
        page.wait_for_timeout(100)
    assert page.evaluate(width) > 0
    shot(page, "admin-version-preview-1366.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    shutil.copy(SHOTS / "admin-version-preview-1366.png", DOCS / "version-preview.png")

    page.locator("#publish").click()
    assert "將於" in page.locator(".messagelist").inner_text()
    draft.refresh_from_db()
    two_days = timezone.localdate() + dt.timedelta(days=2)
    assert draft.status == ProgrammeVersion.Status.SCHEDULED
    assert timezone.localtime(draft.effective_from) == timezone.make_aware(
        dt.datetime.combine(two_days, dt.time.min)
    )
    assert Tier.objects.get(pk=silver.pk).upgrade_threshold == 10_000
