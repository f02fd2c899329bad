"""The KPI dashboard and the audience builder in a real browser, as the operator sees them."""

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from playwright.sync_api import expect

from membership import services
from segments.kpis import take_snapshots
from segments.models import Audience
from segments.services import compute_segments
from tests.factories import MemberFactory, OrderFactory, UserFactory
from tests.test_browser import browser, shot  # noqa: F401  (the browser fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDE = {"width": 1366, "height": 900}


@pytest.fixture
def operator(programme):
    now = timezone.now()
    for k in range(1, 41):
        member = MemberFactory(joined_at=now - dt.timedelta(days=700))
        for i in range(k % 9 + 1):
            OrderFactory(
                member=member, amount=800 * k, placed_at=now - dt.timedelta(days=37 * i + k)
            )
    services.recompute_members()
    compute_segments()
    take_snapshots()
    user = UserFactory(username="op", is_staff=True)
    user.set_password("op-browser-1")
    user.save()
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["membership", "segments"])
    )
    return user


def log_in(page, base):
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "op")
    page.fill("#id_password", "op-browser-1")
    page.click("input[type=submit]")


def test_the_operator_reads_the_dashboard_with_its_charts(live_server, browser, operator):  # noqa: F811
    page = browser.new_page(locale="zh-TW", viewport=WIDE)
    log_in(page, live_server.url)

    page.get_by_role("link", name="KPI 儀表板").click()

    page.wait_for_load_state("networkidle")
    loaded = page.eval_on_selector_all(".kpi-card img", "imgs => imgs.map(i => i.naturalWidth)")
    assert loaded
    assert all(width > 0 for width in loaded)
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDE["width"]
    assert page.get_by_text("銀卡").first.is_visible()
    shot(page, "kpi-dashboard-1366.png")


def test_the_operator_counts_an_audience_and_saves_it(live_server, browser, operator):  # noqa: F811
    page = browser.new_page(locale="zh-TW", viewport=WIDE)
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/segments/audience/add/")

    page.fill("#id_name", "高消費常客")
    page.fill("#id_spend_min", "20000")
    page.get_by_role("button", name="計算人數並顯示範例").click()
    expect(page.get_by_text("目前符合的會員共")).to_be_visible()
    shot(page, "audience-builder-1366.png")
    page.get_by_role("button", name="儲存", exact=True).click()

    expect(page.locator("#result_list")).to_contain_text("高消費常客")
    assert Audience.objects.get(name="高消費常客").query == "window=rolling_12m&spend_min=20000"
