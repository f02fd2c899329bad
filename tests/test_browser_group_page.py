"""The VIP group page in Chromium at a laptop's 1,366 px: the tiers fit, errors show on top."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from membership.models import Tier, VipGroup
from tests.test_browser import browser, shot  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture
def operator_page(live_server, browser, demo):  # noqa: F811 (the fixture imported above)
    user = get_user_model().objects.create_superuser("boss", password="pw-for-browser-1")
    client = Client()
    client.force_login(user)
    context = browser.new_context(locale="zh-TW", viewport=LAPTOP)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    return context.new_page()


def open_group(page, base: str, name: str) -> None:
    group = VipGroup.objects.get(name=name)
    page.goto(f"{base}/admin/membership/vipgroup/{group.pk}/change/")


def test_the_group_page_with_its_tiers_fits_a_1366_px_screen(live_server, operator_page):
    page = operator_page

    open_group(page, live_server.url, "全館 VIP")

    tiers = Tier.objects.filter(group__name="全館 VIP").count()
    assert page.locator("#tiers-group tbody tr.has_original").count() == tiers
    shot(page, "admin-group-tiers-1366.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]


def test_the_live_thresholds_are_read_only_on_the_group_page_with_a_link_to_a_draft(
    live_server, operator_page
):
    page = operator_page
    open_group(page, live_server.url, "全館 VIP")

    assert page.locator("#id_tiers-2-upgrade_threshold").is_disabled()
    page.locator("#live-rules-note a", has_text="新增草稿").click()
    assert page.url.endswith("/admin/membership/programmeversion/add/")


def test_after_a_drag_the_list_shows_the_order_kept_with_the_default_group_last(
    live_server, operator_page
):
    page = operator_page
    page.goto(f"{live_server.url}/admin/membership/vipgroup/")
    kol = VipGroup.objects.get(name="KOL 合作")
    handle = page.locator(f'.handle[pk="{kol.pk}"]').bounding_box()
    bottom = page.locator("#result_list tbody tr").last.bounding_box()

    with page.expect_navigation():  # the list reloads once the server has answered
        page.mouse.move(handle["x"] + 5, handle["y"] + 5)
        page.mouse.down()
        for step in range(1, 21):
            y = handle["y"] + (bottom["y"] + bottom["height"] - handle["y"]) * step / 20
            page.mouse.move(handle["x"] + 5, y)
        page.mouse.up()

    names = page.locator("#result_list tbody tr th a").all_inner_texts()
    kept = list(VipGroup.objects.order_by("priority").values_list("name", flat=True))
    assert names == kept
    assert names[0] != "KOL 合作"
    assert names[-1] == "全館 VIP"
    shot(page, "admin-group-priority-1366.png")
