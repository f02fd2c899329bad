"""The points adjustment form in a real browser: out-of-bounds points and a bad token."""

import pytest

from membership.models import Cause
from membership.services import evaluate_member
from points.models import Entry
from tests.factories import MemberFactory, staff_with
from tests.test_browser import DESKTOP, shot
from tests.test_browser import browser as browser  # noqa: PLC0414 - the shared fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def adjust_page(live_server, browser, demo):
    member = MemberFactory(name="王小明")
    evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    operator = staff_with("adjust_points", "view_member")
    operator.set_password("pw-for-browser-3")
    operator.save()
    page = browser.new_page(locale="zh-TW", viewport=DESKTOP)
    page.goto(f"{live_server.url}/admin/login/")
    page.locator("#id_username").fill(operator.username)
    page.locator("#id_password").fill("pw-for-browser-3")
    page.locator("input[type=submit]").click()
    page.goto(f"{live_server.url}/admin/points/account/member/{member.pk}/adjust/")
    return page


def test_an_operator_adjusting_by_more_than_the_ledger_holds_sees_a_message(adjust_page):
    # when
    adjust_page.locator("#id_points").fill(str(10**20))
    adjust_page.locator("#id_reason").fill("補點")
    adjust_page.locator("input[type=submit]").click()

    # then
    assert adjust_page.locator(".errorlist").first.is_visible()
    assert "9223372036854775807" in adjust_page.locator(".errorlist").first.inner_text()
    assert not Entry.objects.exists()
    shot(adjust_page, "points-adjust-out-of-bounds-zh-hant.png")


def test_an_operator_whose_form_token_was_changed_sees_a_message_and_can_save_again(
    adjust_page,
):
    # given: the hidden token changed on the way
    adjust_page.locator("#id_points").fill("50")
    adjust_page.locator("#id_reason").fill("補點")
    adjust_page.evaluate("document.querySelector('#id_token').value = 'not-a-token'")

    # when
    adjust_page.locator("input[type=submit]").click()

    # then
    assert adjust_page.get_by_text("此表單已過期或在傳送途中遭到變更").is_visible()
    shot(adjust_page, "points-adjust-bad-token-zh-hant.png")
    adjust_page.locator("input[type=submit]").click()
    assert Entry.objects.get().points == 50
