"""The member's pages in a real browser: Debian's chromium driven by Playwright."""

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from membership import services
from membership.models import Cause
from tests.conftest import CHROMIUM
from tests.factories import MemberFactory, OrderFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(
    os.environ.get(
        "SCREENSHOT_DIR", Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
    )
)
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def silver_member(demo):
    user = get_user_model().objects.create_user("xiaoming", password="pw-for-browser-1")
    member = MemberFactory(user=user, name="王小明")
    OrderFactory(member=member, amount=12_000, placed_at=timezone.now())
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    return member


@pytest.fixture
def browser():
    # Playwright's sync API runs an event loop in this thread; the ORM work is done before.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


def log_in(page, base: str):
    page.goto(f"{base}/")
    page.get_by_label("帳號").fill("xiaoming")
    page.get_by_label("密碼").fill("pw-for-browser-1")
    page.get_by_role("button", name="登入").click()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)
    print(f"screenshot: {SHOTS / name}")


def test_a_member_logs_in_and_reads_the_tier_page_in_chinese_then_english(
    live_server, silver_member, browser
):
    page = browser.new_page(locale="zh-TW", viewport=PHONE)
    log_in(page, live_server.url)

    assert page.get_by_text("還差 NT$18,000 即可升級為 金卡").is_visible()
    assert page.locator("tr.mine th").inner_text().startswith("銀卡")
    shot(page, "tier-page-zh-hant-phone.png")

    with page.expect_navigation():
        page.get_by_label("語言").select_option("en")
    assert page.get_by_text("NT$18,000 more for 金卡").is_visible()
    page.set_viewport_size(DESKTOP)
    shot(page, "tier-page-en-desktop.png")


def test_a_member_uses_the_calculator(live_server, silver_member, browser):
    page = browser.new_page(locale="zh-TW", viewport=PHONE)
    log_in(page, live_server.url)

    page.get_by_label("如果我消費（NT$）").fill("20000")
    page.get_by_role("button", name="試算").click()

    assert "金卡" in page.get_by_role("status").inner_text()
    shot(page, "calculator-zh-hant-phone.png")


def test_an_operator_imports_a_file_sees_the_bad_row_and_imports_the_rest(
    live_server, browser, tmp_path, demo
):
    from tests.factories import staff_with

    operator = staff_with("import_members", "view_member")
    operator.set_password("pw-for-browser-2")
    operator.save()
    upload = tmp_path / "members.csv"
    upload.write_text(
        "會員編號,姓名,手機,標籤\nA1,王小明,0912-345-678,\nA2,林小美,12345,\nA3,陳大文,,企業客戶\n",
        encoding="cp950",
    )
    page = browser.new_page(locale="en-US", viewport=DESKTOP)
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill(operator.username)
    page.get_by_label("Password").fill("pw-for-browser-2")
    page.get_by_role("button", name="Log in").click()

    page.goto(f"{live_server.url}/admin/membership/member/")
    page.get_by_role("link", name="Import", exact=True).click()
    page.locator("input[type=file]").set_input_files(str(upload))
    page.get_by_role("button", name="Upload and check").click()

    # CP950 is only ever a guess: the operator sees the rows as read, and confirms
    assert "it reads as cp950" in page.locator("#import-encoding").inner_text()
    assert "陳大文" in page.locator("#import-decoded").inner_text()
    shot(page, "import-encoding-desktop.png")
    page.get_by_role("button", name="Check the file with this encoding").click()

    assert page.get_by_text("3 rows: 2 valid, 1 with errors").is_visible()
    problems = page.locator("#import-problems").inner_text()
    assert "3\t手機\t12345\tnot a Taiwanese mobile number" in problems  # header, value
    shot(page, "import-preview-desktop.png")

    page.get_by_label("I understand that 1 row with errors will be skipped").check()
    page.get_by_role("button", name="Import only the 2 valid rows").click()

    assert page.get_by_text("Imported: 2 created, 0 updated, 1 skipped.").is_visible()
    assert "No e-mails were sent" in page.locator("#import-notified").inner_text()
    sample = page.locator("#import-sample").inner_text()
    assert "王小明\t全館 VIP" in sample
    assert "陳大文\t企業 VIP" in sample
    shot(page, "import-result-desktop.png")


def test_the_import_page_names_its_columns_in_zh_hant(live_server, browser):
    from tests.factories import staff_with

    operator = staff_with("import_members", "view_member")
    operator.set_password("pw-for-browser-3")
    operator.save()
    page = browser.new_page(locale="zh-TW", viewport=DESKTOP)
    page.goto(f"{live_server.url}/admin/login/")
    page.locator("#id_username").fill(operator.username)
    page.locator("#id_password").fill("pw-for-browser-3")
    page.locator("input[type=submit]").click()

    page.goto(f"{live_server.url}/admin/imports/importjob/new/members/")

    table = page.locator("table").last.inner_text()
    assert "外部編號 *" in table
    assert "期初消費（NT$）" in table
    assert "opening_spend\t" not in table
    shot(page, "import-upload-zh-hant-desktop.png")


def test_an_operator_previews_a_latin1_file_in_another_encoding_and_imports_it(
    live_server, browser, tmp_path, demo
):
    from membership.models import Member
    from tests.factories import staff_with

    operator = staff_with("import_members", "view_member")
    operator.set_password("pw-for-browser-4")
    operator.save()
    upload = tmp_path / "members.csv"
    upload.write_bytes("external_id,name\nA1,Renée\n".encode("latin-1"))
    page = browser.new_page(locale="en-US", viewport=DESKTOP)
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill(operator.username)
    page.get_by_label("Password").fill("pw-for-browser-4")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}/admin/imports/importjob/new/members/")
    page.locator("input[type=file]").set_input_files(str(upload))
    page.get_by_role("button", name="Upload and check").click()

    guessed = page.locator("#import-decoded").inner_text()
    page.get_by_label("Encoding").select_option("cp1252")
    page.get_by_role("button", name="Preview with this encoding").click()
    previewed = page.locator("#import-decoded").inner_text()
    shot(page, "import-encoding-preview-desktop.png")
    page.get_by_role("button", name="Check the file with this encoding").click()
    page.get_by_role("button", name="Import all 1 rows").click()

    assert "Ren嶪" in guessed  # CP950's reading, without an error
    assert "Renée" in previewed
    assert page.get_by_text("Imported: 1 created, 0 updated, 0 skipped.").is_visible()
    assert Member.objects.get().name == "Renée"
