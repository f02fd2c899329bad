"""The operator's day in the admin, in Chromium at 1,366 px: an order with a partial
refund, an enterprise with two sub-accounts picked by autocomplete, its audit entry."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from b2b.models import Enterprise, Role
from membership import services
from membership.management.commands.seed_demo import operator_role
from membership.models import AuditEntry, Cause, Order
from tests.factories import MemberFactory
from tests.test_browser import browser, shot  # noqa: F401  (the Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 900}
PASSWORD = "pw-for-browser-3"


@pytest.fixture
def operator(demo):
    user = get_user_model().objects.create_user("yating", password=PASSWORD, is_staff=True)
    user.groups.add(operator_role())
    for role in ["採購", "財務", "倉儲"]:  # a transactional test starts without migration data
        Role.objects.get_or_create(name=role)
    for name, phone in [
        ("王小明", "0912345678"),
        ("林小美", "0922333444"),
        ("陳大文", "0933444555"),
        ("張志明", "0955666777"),
    ]:
        member = MemberFactory(name=name, phone=phone)
        services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    return user


def log_in(page, base: str) -> None:
    page.goto(f"{base}/admin/login/")
    page.get_by_label("使用者名稱").fill("yating")
    page.get_by_label("密碼").fill(PASSWORD)
    page.get_by_role("button", name="登入").click()


def pick(page, select_id: str, typed: str, name: str) -> None:
    """Choose a member in an autocomplete (select2) by typing as an operator would."""
    page.locator(f"#{select_id} + .select2").click()
    page.locator(".select2-container--open .select2-search__field").fill(typed)
    page.locator(".select2-results__option", has_text=name).click()


def test_an_operator_adds_an_order_then_refunds_part_of_it(live_server, browser, operator):  # noqa: F811
    page = browser.new_page(locale="zh-TW", viewport=LAPTOP)
    log_in(page, live_server.url)

    page.goto(f"{live_server.url}/admin/membership/order/add/")
    pick(page, "id_member", "0912-345-678", "王小明")
    page.get_by_label("外部編號").fill("WEB-1001")
    page.get_by_label("通路").fill("web")
    page.get_by_label("金額").fill("12000")
    page.locator("#id_placed_at_0").fill("2026-11-20")
    page.locator("#id_placed_at_1").fill("14:30:00")
    shot(page, "admin-order-add-1366.png")
    page.get_by_role("button", name="儲存", exact=True).click()

    expect(page.locator(".messagelist .success")).to_be_visible()
    page.get_by_role("link", name="WEB-1001").click()
    page.get_by_role("link", name="記錄退款").click()
    page.get_by_label("金額（NT$）").fill("3000")
    page.get_by_label("退款編號").fill("R-1001")
    page.get_by_role("button", name="記錄退款").click()

    expect(page.locator(".messagelist .success")).to_be_visible()
    shot(page, "admin-order-refunded-1366.png")
    order = Order.objects.get(external_id="WEB-1001")
    assert (order.amount, order.refunded_amount) == (12_000, 3_000)


def test_an_operator_creates_an_enterprise_with_two_sub_accounts_and_reads_its_audit_entry(
    live_server,
    browser,  # noqa: F811
    operator,
):
    page = browser.new_page(locale="zh-TW", viewport=LAPTOP)
    log_in(page, live_server.url)

    page.goto(f"{live_server.url}/admin/b2b/enterprise/add/")
    page.get_by_label("公司名稱").fill("台灣積體電路")
    page.get_by_label("統一編號").fill("22099131")
    pick(page, "id_master", "張志明", "張志明")
    pick(page, "id_sub_accounts-0-member", "+886 922 333 444", "林小美")
    page.locator("#id_sub_accounts-0-role").select_option(label="採購")
    page.get_by_role("button", name="新增其它 子帳號", exact=True).click()
    pick(page, "id_sub_accounts-1-member", "0933-444-555", "陳大文")
    page.locator("#id_sub_accounts-1-role").select_option(label="財務")
    shot(page, "admin-enterprise-add-1366.png")
    page.get_by_role("button", name="儲存", exact=True).click()

    expect(page.locator(".messagelist .success")).to_be_visible()
    enterprise = Enterprise.objects.get(business_id="22099131")
    assert sorted(enterprise.sub_accounts.values_list("member__name", flat=True)) == [
        "林小美",
        "陳大文",
    ]

    entry = AuditEntry.objects.get(action="enterprise.add", object_id=str(enterprise.pk))
    page.goto(f"{live_server.url}/admin/membership/auditentry/?q=台灣積體電路")
    page.locator(f'#result_list a[href*="/{entry.pk}/change/"]').first.click()

    assert "台灣積體電路" in page.locator("#content").inner_text()
    shot(page, "admin-audit-entry-enterprise-1366.png")
