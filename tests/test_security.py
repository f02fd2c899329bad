"""Logins and headers: throttling and lockout, unlock, TOTP for staff, the CSP header, and
sessions that end on every worker at logout."""

import datetime as dt
import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import MemberFactory, UserFactory, staff_with
from tests.test_browser import browser as chromium  # noqa: F401  (a fixture)
from tests.test_browser import shot

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "right-password-1"


@pytest.fixture
def member_user(db):
    user = get_user_model().objects.create_user("xiaoming", password=PASSWORD)
    MemberFactory(user=user, name="王小明")
    return user


@pytest.fixture
def staff_user(db):
    user = UserFactory(username="clerk")
    user.set_password(PASSWORD)
    user.save()
    return user


def fail_logins(client, url: str, username: str, times: int, **extra) -> None:
    for _ in range(times):
        client.post(url, {"username": username, "password": "wrong"}, **extra)


# -- throttling and lockout --------------------------------------------------------------


def test_five_wrong_passwords_lock_the_member_login_with_a_message_in_chinese(client, member_user):
    # given
    fail_logins(client, "/login/", "xiaoming", 5)

    # when
    response = client.post("/login/", {"username": "xiaoming", "password": PASSWORD})

    # then
    assert response.status_code == 429
    page = response.content.decode()
    assert "登入失敗次數過多" in page
    assert "15 分鐘後再試" in page
    assert "_auth_user_id" not in client.session


def test_four_wrong_passwords_still_let_the_right_one_in(client, member_user):
    fail_logins(client, "/login/", "xiaoming", 4)

    response = client.post("/login/", {"username": "xiaoming", "password": PASSWORD})

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(member_user.pk)


def test_the_admin_login_locks_out_after_five_wrong_passwords(client, staff_user):
    fail_logins(client, "/admin/login/", "clerk", 5)

    response = client.post("/admin/login/", {"username": "clerk", "password": PASSWORD})

    assert response.status_code == 429
    assert "登入失敗次數過多" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_the_lock_holds_the_username_from_that_address_only(client, member_user):
    # given: five failures from one address
    fail_logins(client, "/login/", "xiaoming", 5, REMOTE_ADDR="203.0.113.9")

    # when: the member logs in from another address
    response = client.post(
        "/login/", {"username": "xiaoming", "password": PASSWORD}, REMOTE_ADDR="198.51.100.4"
    )

    # then
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(member_user.pk)


def test_the_lock_lifts_after_the_cool_off(client, member_user):
    fail_logins(client, "/login/", "xiaoming", 5)

    with time_machine.travel(timezone.now() + dt.timedelta(minutes=16)):
        response = client.post("/login/", {"username": "xiaoming", "password": PASSWORD})

    assert response.status_code == 302


def test_an_operator_with_the_permission_unlocks_a_login_from_the_admin(client, member_user):
    # given: a locked login and an operator allowed to remove access attempts
    fail_logins(client, "/login/", "xiaoming", 5)
    attempt = AccessAttempt.objects.get(username="xiaoming")
    operator = staff_with("view_accessattempt", "delete_accessattempt")
    operator_client = client.__class__()
    operator_client.force_login(operator)

    # when: the operator deletes the attempt with the list's action, as in the admin
    response = operator_client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )

    # then
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username="xiaoming").exists()
    login = client.post("/login/", {"username": "xiaoming", "password": PASSWORD})
    assert login.status_code == 302


def test_staff_without_the_permission_cannot_unlock(client, member_user):
    fail_logins(client, "/login/", "xiaoming", 5)
    attempt = AccessAttempt.objects.get(username="xiaoming")
    clerk = staff_with("view_member")
    client.force_login(clerk)

    response = client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )

    assert response.status_code == 403
    assert AccessAttempt.objects.filter(username="xiaoming").exists()


# -- Content-Security-Policy ---------------------------------------------------------------


def csp_directives(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_every_page_carries_a_policy_that_allows_no_inline_script(client, db, url):
    response = client.get(url)

    directives = csp_directives(response)
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"


def test_the_member_page_carries_the_policy_and_no_inline_script(client, member_user):
    client.force_login(member_user)

    response = client.get("/me/")

    assert response.status_code == 200
    assert csp_directives(response)["script-src"] == "'self'"
    page = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert not re.search(r"\son[a-z]+=", page)


# -- TOTP for staff ------------------------------------------------------------------------


def current_token(device: TOTPDevice) -> str:
    token = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return str(token).zfill(device.digits)


@pytest.fixture
def totp_required(settings):
    settings.STAFF_TOTP_REQUIRED = True


def test_with_totp_off_a_password_alone_reaches_the_admin(client, staff_user, settings):
    settings.STAFF_TOTP_REQUIRED = False

    client.post("/admin/login/?next=/admin/", {"username": "clerk", "password": PASSWORD})

    assert client.get("/admin/").status_code == 200


def test_with_totp_on_a_staff_login_without_a_device_does_not_reach_the_admin(
    client, staff_user, totp_required
):
    response = client.post("/admin/login/", {"username": "clerk", "password": PASSWORD})

    assert response.status_code == 200  # the form again, asking for a token
    assert client.get("/admin/").status_code == 302
    assert client.get(reverse("admin:membership_member_changelist")).status_code == 302


def test_with_totp_on_a_password_login_on_the_member_page_does_not_reach_the_admin(
    client, staff_user, totp_required
):
    client.post("/login/", {"username": "clerk", "password": PASSWORD})
    assert client.session["_auth_user_id"] == str(staff_user.pk)

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


def test_with_totp_on_a_wrong_token_does_not_reach_the_admin(client, staff_user, totp_required):
    device = TOTPDevice.objects.create(user=staff_user, name="phone", confirmed=True)
    wrong = str((int(current_token(device)) + 1) % 1_000_000).zfill(6)

    client.post("/admin/login/", {"username": "clerk", "password": PASSWORD, "otp_token": wrong})

    assert client.get("/admin/").status_code == 302


def test_with_totp_on_a_valid_token_reaches_the_admin(client, staff_user, totp_required):
    # given
    device = TOTPDevice.objects.create(user=staff_user, name="phone", confirmed=True)

    # when
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "clerk", "password": PASSWORD, "otp_token": current_token(device)},
    )

    # then
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_an_unconfirmed_device_does_not_count(client, staff_user, totp_required):
    device = TOTPDevice.objects.create(user=staff_user, name="phone", confirmed=False)

    client.post(
        "/admin/login/",
        {"username": "clerk", "password": PASSWORD, "otp_token": current_token(device)},
    )

    assert client.get("/admin/").status_code == 302


def test_an_administrator_enrols_a_staff_device_in_the_admin_and_gets_its_qr_code(
    admin_client, staff_user
):
    # given: the admin's add form for a TOTP device, posted as the administrator would
    response = admin_client.post(
        reverse("admin:otp_totp_totpdevice_add"),
        {
            "user": staff_user.pk,
            "name": "clerk's phone",
            "confirmed": "on",
            "key": "3132333435363738393031323334353637383930",
            "step": 30,
            "t0": 0,
            "digits": 6,
            "tolerance": 1,
            "drift": 0,
            "throttling_failure_count": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    device = TOTPDevice.objects.get(user=staff_user)

    # when
    qr = admin_client.get(reverse("admin:otp_totp_totpdevice_qrcode", args=[device.pk]))

    # then
    assert qr.status_code == 200
    assert qr["Content-Type"] == "image/svg+xml"
    assert b"<svg" in qr.content


# -- logout ends the session on every worker -----------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_environment(database_url: str) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DJANGO_") and k not in {"CACHE_URL", "DATABASE_URL"}
    }
    environment.update(DATABASE_URL=database_url, CELERY_TASK_ALWAYS_EAGER="1")
    return environment


def manage(environment: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture
def shared_database(transactional_db, tmp_path):
    """A database two server processes share: the test database on PostgreSQL (committed
    rows, as the test is transactional), a migrated file on SQLite (the test's own is in
    memory)."""
    if connection.vendor == "postgresql":
        s = connection.settings_dict
        password = f":{urllib.parse.quote(s['PASSWORD'])}" if s["PASSWORD"] else ""
        url = f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"
        get_user_model().objects.create_user("xiaoming", password=PASSWORD)
        return url
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    environment = server_environment(url)
    manage(environment, "migrate", "--no-input")
    manage(
        environment,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user('xiaoming', password='{PASSWORD}')",
    )
    return url


@pytest.fixture
def two_workers(shared_database):
    """Two `runserver` processes on different ports over the same database, with no
    CACHE_URL: each has its own process-local cache, as two gunicorn workers would."""
    environment = server_environment(shared_database)
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            wait_for(port)
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the server on port {port} did not start")


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """One browser: one cookie jar sent to both workers (cookies ignore the port)."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirects
        )

    def request(self, url: str, data: dict | None = None) -> int:
        if data is not None:
            data = urllib.parse.urlencode(
                {**data, "csrfmiddlewaretoken": self.cookie("csrftoken")}
            ).encode()
        try:
            with self.opener.open(url, data=data, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.jar if c.name == name)


def test_logging_out_on_one_worker_ends_the_session_on_every_worker(two_workers):
    # given: a member logged in through the first worker, served by both
    first, second = two_workers
    browser = Browser()
    browser.request(f"{first}/login/")
    assert browser.request(f"{first}/login/", {"username": "xiaoming", "password": PASSWORD}) == 302
    session = browser.cookie("sessionid")
    for worker in (first, second):
        assert is_logged_in(browser, worker)

    # when: the member logs out through the second worker
    assert browser.request(f"{second}/logout/", {}) == 302

    # then: the old session cookie is refused by both workers
    replay = Browser()
    replay.jar.set_cookie(cookie_like(browser, "sessionid", session))
    for worker in (first, second):
        assert not is_logged_in(replay, worker)


def is_logged_in(browser: Browser, base: str) -> bool:
    """/me/ answers 404 to this login (it has no membership) and sends anyone else to log in."""
    status = browser.request(f"{base}/me/")
    assert status in (302, 404), status
    return status == 404


def cookie_like(browser: Browser, name: str, value: str) -> http.cookiejar.Cookie:
    original = next(c for c in browser.jar if c.name == "csrftoken")
    return http.cookiejar.Cookie(
        0, name, value, None, False, original.domain, original.domain_specified,
        original.domain_initial_dot, "/", True, False, None, False, None, None, {},
    )  # fmt: skip


# -- the policy in a real browser ----------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_no_member_or_admin_page_breaks_the_policy_in_chromium(live_server, chromium, demo):  # noqa: F811
    # given: the demo programme, a member with an order, an administrator
    from membership import services
    from membership.models import Cause, Tier, VipGroup

    member = MemberFactory(
        user=get_user_model().objects.create_user("xiaoming", password=PASSWORD), name="王小明"
    )
    order = services.record_order(
        member_id=member.pk, external_id="O-1", amount=12_000, placed_at=timezone.now()
    ).order
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    get_user_model().objects.create_superuser("boss", password=PASSWORD)
    device_user = UserFactory(username="clerk")
    TOTPDevice.objects.create(user=device_user, name="phone", confirmed=True)
    base = live_server.url
    problems: list[str] = []
    page = chromium.new_page(locale="zh-TW", viewport={"width": 1280, "height": 900})
    page.on(
        "console",
        lambda m: "Content Security Policy" in m.text and problems.append(f"{page.url}: {m.text}"),
    )
    page.on("pageerror", lambda e: problems.append(f"{page.url}: {e}"))

    def visit(path: str, screenshot: str | None = None) -> None:
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        if screenshot:
            shot(page, screenshot)

    # when: a member's pages, then the lockout page, then the admin's
    visit("/login/")
    page.get_by_label("帳號").fill("xiaoming")
    page.get_by_label("密碼").fill(PASSWORD)
    page.get_by_role("button", name="登入").click()
    page.wait_for_load_state("networkidle")
    shot(page, "security-member-page-with-data-download.png")
    visit("/me/calculator/?amount=20000&on=2026-12-31")
    visit(f"/me/orders/{order.pk}/")
    visit("/me/")
    with page.expect_download() as download:
        page.get_by_role("link", name="下載我的資料").click()
    assert download.value.suggested_filename.endswith(".zip")
    page.get_by_role("button", name="登出").click()
    for _ in range(5):
        page.goto(base + "/login/")
        page.get_by_label("帳號").fill("xiaoming")
        page.get_by_label("密碼").fill("wrong")
        page.get_by_role("button", name="登入").click()
    assert page.get_by_text("登入失敗次數過多").first.is_visible()
    shot(page, "security-lockout-zh-hant.png")

    visit("/admin/login/")
    page.locator("#id_username").fill("boss")
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#login-form [type=submit]").click()
    page.wait_for_load_state("networkidle")
    group = VipGroup.objects.order_by("pk").first()
    tier = Tier.objects.order_by("pk").first()
    for path in [
        "/admin/",
        "/admin/membership/member/",
        f"/admin/membership/member/{member.pk}/change/",
        "/admin/membership/member/add/",
        "/admin/membership/vipgroup/",
        f"/admin/membership/vipgroup/{group.pk}/change/",
        f"/admin/membership/tier/{tier.pk}/change/",
        reverse("admin:imports_upload", args=["members"]),
        "/admin/axes/accessattempt/",
        "/admin/otp_totp/totpdevice/add/",
        "/admin/otp_totp/totpdevice/",
    ]:
        visit(path)
    visit("/admin/membership/vipgroup/", "security-admin-sortable-groups.png")
    visit("/admin/membership/member/")
    page.locator(f"input[name=_selected_action][value='{member.pk}']").check()
    page.locator("select[name=action]").select_option("erase_personal_data_action")
    page.get_by_role("button", name="執行").click()
    page.wait_for_load_state("networkidle")
    shot(page, "security-erase-confirmation.png")

    # then
    assert problems == []
    # and the watch works: an inline script added to the page is refused and reported
    page.evaluate(
        "document.body.appendChild(Object.assign(document.createElement('script'),"
        " {textContent: 'document.title = 1'}))"
    )
    page.wait_for_timeout(200)
    assert any("inline script" in p for p in problems)
