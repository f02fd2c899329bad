"""The API's pages in Chromium: Swagger UI and the API key admin, under the site's CSP."""

import pytest
from django.contrib.auth import get_user_model

from api.keys import create_api_key
from api.models import ApiKey, Scope
from tests.test_browser import browser as chromium  # noqa: F401  (a fixture)
from tests.test_browser import shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "right-password-1"


def watch(page) -> list[str]:
    problems: list[str] = []
    page.on(
        "console",
        lambda m: "Content Security Policy" in m.text and problems.append(f"{page.url}: {m.text}"),
    )
    page.on("pageerror", lambda e: problems.append(f"{page.url}: {e}"))
    return problems


def admin_page(browser, base: str):
    """A page logged in to the admin as a new superuser, watched for CSP violations."""
    get_user_model().objects.create_superuser("boss", password=PASSWORD)
    page = browser.new_page(locale="zh-TW", viewport={"width": 1280, "height": 900})
    problems = watch(page)
    page.goto(f"{base}/admin/login/")
    page.locator("#id_username").fill("boss")
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#login-form [type=submit]").click()
    page.wait_for_load_state("networkidle")
    return page, problems


def test_swagger_ui_renders_the_schema_with_no_csp_violation(live_server, chromium):  # noqa: F811
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    problems = watch(page)

    page.goto(f"{live_server.url}/api/v1/docs/")
    page.wait_for_load_state("networkidle")
    page.locator(".swagger-ui .opblock").first.wait_for()
    shot(page, "api-swagger-ui.png")

    assert "VIP membership API" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".swagger-ui .opblock").count() >= 14
    assert problems == []


def test_an_operator_makes_a_key_in_the_admin_with_no_csp_violation(live_server, chromium):  # noqa: F811
    page, problems = admin_page(chromium, live_server.url)

    page.goto(f"{live_server.url}/admin/api/apikey/add/")
    page.locator("#id_name").fill("Cyberbiz")
    page.get_by_label("傳送訂單、退款與取消").check()
    page.get_by_label("讀取會員資料與使用等級試算").check()
    shot(page, "api-key-add.png")
    page.locator("[name=_save]").click()
    page.wait_for_load_state("networkidle")
    shot(page, "api-key-created.png")

    assert page.locator("#api-key").inner_text().startswith("vip_")
    assert page.get_by_text("只會顯示這一次").is_visible()
    page.goto(f"{live_server.url}/admin/api/apikey/")
    shot(page, "api-key-list.png")
    assert problems == []


def test_an_operator_revokes_a_key_from_its_page_after_confirming(live_server, chromium):  # noqa: F811
    key = create_api_key(name="門市 POS", scopes=[Scope.POINTS_WRITE], actor=None).api_key
    page, problems = admin_page(chromium, live_server.url)

    page.goto(f"{live_server.url}/admin/api/apikey/{key.pk}/change/")
    shot(page, "api-key-page.png")
    assert page.locator("[name=_save]").count() == 0
    page.get_by_text("撤銷這把金鑰").click()
    page.wait_for_load_state("networkidle")
    shot(page, "api-key-revoke-confirm.png")
    page.get_by_role("button", name="確定撤銷").click()
    page.wait_for_load_state("networkidle")
    shot(page, "api-key-revoked.png")

    assert page.get_by_text("已撤銷 門市 POS").is_visible()
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert problems == []
