"""Export of every admin list (CSV with BOM, XLSX, JSON) and the programme's import/export.

The operator exports as the admin does: the list's Export button opens a page where a
format is chosen, and the form is posted back to the same address (the list's filters
ride in its query string).
"""

import csv
import datetime as dt
import io
import json

import openpyxl
import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from b2b import services as b2b
from b2b.models import Role
from membership import services
from membership.models import (
    AuditEntry,
    Nudge,
    NudgeKind,
    Tag,
    Tier,
    TierBenefit,
    TierHistory,
    VipGroup,
)
from points import services as points
from points.models import Partner, PartnerBonus, Promotion, Reward
from subscriptions.models import ChargeAttempt, Plan, Subscription
from tests import test_browser
from tests.factories import MemberFactory, UserFactory, staff_with
from tests.test_browser import DESKTOP, shot

browser = test_browser.browser  # the Chromium fixture, shared
CSV, XLSX, JSON = "0", "1", "2"
LISTS = {
    # list: (admin url prefix, header, a value the list shows for the world below)
    "members": ("membership_member", "等級", "銀卡"),
    "orders": ("membership_order", "外部編號", "A-1"),
    "points accounts": ("points_account", "餘額", 100),
    "ledger entries": ("points_entry", "點數", 100),
    "tier history": ("membership_tierhistory", "新等級", "銀卡"),
    "gifts": ("membership_giftissue", "禮物", "銀卡迎新禮"),
    "audit log": ("membership_auditentry", "動作", "會員 · note"),
    "subscriptions": ("subscriptions_subscription", "方案", "基礎方案"),
    "charge attempts": ("subscriptions_chargeattempt", "訂閱方案", "基礎方案"),
    "enterprises": ("b2b_enterprise", "統一編號", "22099131"),
    "nudges": ("membership_nudge", "類型", "即將升級"),
}


@pytest.fixture
def client(client, django_capture_on_commit_callbacks):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hant"
    original = client.request

    def request(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return original(**kwargs)

    client.request = request
    return client


def operator_role():
    """The demo's 營運人員: what seed_demo gives it, viewing and exporting every list."""
    user = UserFactory(username="operator")
    exporting = Permission.objects.filter(codename__startswith="export_")
    viewing = Permission.objects.filter(
        codename__startswith="view_",
        content_type__app_label__in=["membership", "points", "subscriptions", "b2b", "imports"],
    )
    user.user_permissions.set([*exporting, *viewing])
    return user


@pytest.fixture
def world(programme):
    """One row in every list: 王小明 bought NT$12,000 (銀卡), and the rest around him."""
    actor = UserFactory(username="boss")
    member = MemberFactory(name="王小明", external_id="M1", phone="0912345678")
    services.record_order(
        member_id=member.pk,
        external_id="A-1",
        amount=12_000,
        placed_at=timezone.now() - dt.timedelta(days=1),
        channel="web",
    )
    points.earn(member_id=member.pk, points=100, source="action", source_ref="x", key="k-1")
    services.record_audit(actor=actor, action="member.note", obj=member, reason="=1+1")
    Nudge.objects.create(
        member=member,
        kind=NudgeKind.ABOUT_TO_UPGRADE,
        period="2026-11",
        tier=programme.tiers["金卡"],
        amount=400,
        created_at=timezone.now(),
    )
    plan = Plan.objects.create(name="基礎方案", price=199, tier=programme.tiers["銀卡"])
    subscription = Subscription.objects.create(
        member=member,
        plan=plan,
        card_token="tok_ok",
        period_start=timezone.now(),
        period_end=timezone.now() + dt.timedelta(days=30),
    )
    ChargeAttempt.objects.create(
        subscription=subscription,
        period_start=subscription.period_start,
        attempt=1,
        amount=199,
        idempotency_key="sub-1-1",
        result=ChargeAttempt.Result.SUCCEEDED,
        created_at=timezone.now(),
    )
    master = MemberFactory(name="陳大同", external_id="M2")
    enterprise = b2b.create_enterprise(
        master=master, actor=actor, name="台灣示範科技", business_id="22099131"
    )
    b2b.add_sub_account(
        enterprise=enterprise,
        member=MemberFactory(name="林採購", external_id="M3"),
        role=Role.objects.first(),
        actor=actor,
    )
    return member


def export(client, prefix: str, fmt: str, query: str = ""):
    url = reverse(f"admin:{prefix}_export") + query
    page = client.get(url)
    assert page.status_code == 200
    return client.post(url, {"format": fmt, "resource": "0"})


def rows_of(response, fmt: str) -> list[list]:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Disposition"].startswith("attachment")
    if fmt == CSV:
        text = response.content.decode("utf-8")
        assert text.startswith("\ufeff")
        return list(csv.reader(io.StringIO(text[1:])))
    if fmt == XLSX:
        sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
        return [["" if v is None else v for v in row] for row in sheet.iter_rows(values_only=True)]
    records = json.loads(response.content)
    return [list(records[0]), *(list(r.values()) for r in records)]


def column(rows: list[list], header: str) -> list:
    index = rows[0].index(header)
    return [row[index] for row in rows[1:]]


@pytest.mark.parametrize("fmt", [CSV, XLSX, JSON], ids=["csv", "xlsx", "json"])
@pytest.mark.parametrize("name", LISTS)
def test_the_operator_exports_every_list_with_chinese_headers_and_display_values(
    world, client, name, fmt
):
    # given
    prefix, header, value = LISTS[name]
    client.force_login(operator_role())

    # when
    rows = rows_of(export(client, prefix, fmt), fmt)

    # then
    expected = str(value) if fmt == CSV else value
    assert expected in column(rows, header)


def test_the_export_button_is_on_every_list_for_the_operator(world, client):
    client.force_login(operator_role())

    for prefix, _header, _value in LISTS.values():
        page = client.get(reverse(f"admin:{prefix}_changelist")).content.decode()
        assert reverse(f"admin:{prefix}_export") in page, prefix


def test_the_member_list_has_one_export_button_whose_page_offers_the_streamed_csv(world, client):
    # given
    client.force_login(operator_role())

    # when
    listing = client.get(reverse("admin:membership_member_changelist") + "?q=王小明")
    page = client.get(reverse("admin:membership_member_export") + "?q=王小明")

    # then
    assert listing.content.decode().count('class="export_link"') == 1
    assert reverse("admin:imports_export", args=["members"]) not in listing.content.decode()
    streamed = reverse("admin:imports_export", args=["members"]) + "?q=%E7%8E%8B%E5%B0%8F%E6%98%8E"
    assert streamed in page.content.decode()


def test_the_export_follows_the_lists_filter(world, client, programme):
    # given: 王小明 is 銀卡; the enterprise's members and 路人甲 are not
    MemberFactory(name="路人甲", external_id="M9")
    client.force_login(operator_role())

    # when: the list is filtered to 全館 VIP's 銀卡
    tier = programme.tiers["銀卡"]
    rows = rows_of(export(client, "membership_member", CSV, f"?tier={tier.pk}"), CSV)

    # then
    assert column(rows, "姓名") == ["王小明"]


def test_the_export_follows_the_lists_search(world, client):
    client.force_login(operator_role())

    rows = rows_of(export(client, "points_entry", XLSX, "?q=M1"), XLSX)

    assert column(rows, "會員編號") == ["M1"]


def test_the_ledger_download_names_each_entrys_source_in_chinese(world, client):
    client.force_login(operator_role())

    rows = rows_of(export(client, "points_entry", XLSX, "?q=M1"), XLSX)

    assert column(rows, "來源") == ["互動任務"]  # posted as "action"


def test_times_are_in_taipei(world, client):
    # given: an order placed at 2026-11-20 16:30 UTC
    order = world.orders.get()
    order.placed_at = dt.datetime(2026, 11, 20, 16, 30, tzinfo=dt.UTC)
    order.save()
    client.force_login(operator_role())

    # when
    rows = rows_of(export(client, "membership_order", XLSX), XLSX)

    # then: Taipei is eight hours ahead
    assert column(rows, "下單時間") == ["2026-11-21 00:30:00"]


def test_cells_that_would_run_as_formulas_are_escaped_in_csv_and_xlsx(world, client):
    # given: the audit entry's reason is "=1+1" and a member is named "@SUM(A1)"
    MemberFactory(name="@SUM(A1)", external_id="M5")
    client.force_login(operator_role())

    # when
    audit = rows_of(export(client, "membership_auditentry", CSV), CSV)
    members = rows_of(export(client, "membership_member", XLSX), XLSX)

    # then
    assert "'=1+1" in column(audit, "原因")
    assert "'@SUM(A1)" in column(members, "姓名")


def test_negative_points_stay_numbers_in_xlsx(world, client):
    points.adjust(member_id=world.pk, points=-30, reason="更正", actor=UserFactory(), key="adj-1")
    client.force_login(operator_role())

    rows = rows_of(export(client, "points_entry", XLSX), XLSX)

    assert -30 in column(rows, "點數")


@pytest.mark.parametrize("name", LISTS)
def test_exporting_without_the_export_permission_is_refused(world, client, name):
    # given: the operator may see the list but not export it
    prefix = LISTS[name][0]
    user = operator_role()
    user.user_permissions.remove(*Permission.objects.filter(codename__startswith="export_"))
    client.force_login(user)

    # when
    page = client.get(reverse(f"admin:{prefix}_changelist"))
    response = client.post(reverse(f"admin:{prefix}_export"), {"format": CSV})

    # then
    assert reverse(f"admin:{prefix}_export") not in page.content.decode()
    assert response.status_code == 403


def test_the_member_export_stays_a_fixed_number_of_queries_on_a_long_list(world, client):
    # given
    client.force_login(operator_role())
    with CaptureQueriesContext(connection) as short_list:
        rows_of(export(client, "membership_member", CSV), CSV)
    for i in range(60):
        member = MemberFactory(external_id=f"B{i}")
        services.add_tag(member_id=member.pk, tag=Tag.objects.get(name="KOL"), actor=None)

    # when
    with CaptureQueriesContext(connection) as long_list:
        rows_of(export(client, "membership_member", CSV), CSV)

    # then: the same queries for 60 more members, none of them per member
    assert len(long_list) == len(short_list)


def test_the_ledger_export_stays_a_fixed_number_of_queries_on_a_long_list(world, client):
    # given
    client.force_login(operator_role())
    with CaptureQueriesContext(connection) as short_list:
        rows_of(export(client, "points_entry", XLSX), XLSX)
    for i in range(40):
        member = MemberFactory(external_id=f"C{i}")
        points.earn(member_id=member.pk, points=10, source="action", source_ref="x", key=f"c{i}")

    # when
    with CaptureQueriesContext(connection) as long_list:
        rows = rows_of(export(client, "points_entry", XLSX), XLSX)

    # then: forty more entries, the same queries
    assert len(rows) == 42
    assert len(long_list) == len(short_list)


# -- the programme's configuration --------------------------------------------------


CONFIG = [
    ("tags", "membership_tag"),
    ("groups", "membership_vipgroup"),
    ("tiers", "membership_tier"),
    ("rewards", "points_reward"),
    ("promotions", "points_promotion"),
    ("partners", "points_partner"),
]


@pytest.fixture
def admin_user(db):
    return UserFactory(username="root", is_superuser=True)


def config_files(client) -> dict[str, bytes]:
    files = {}
    for name, prefix in CONFIG:
        response = export(client, prefix, JSON if name == "groups" else XLSX)
        assert response.status_code == 200
        files[name] = response.content
    return files


def import_file(client, prefix: str, content: bytes, fmt: str, filename: str):
    """Upload (preview), then confirm as the operator clicks it; returns both pages."""
    url = reverse(f"admin:{prefix}_import")
    preview = client.post(
        url,
        {"format": fmt, "resource": "0", "import_file": SimpleUploadedFile(filename, content)},
    )
    form = preview.context.get("confirm_form") if preview.context else None
    if form is None:
        return preview, None
    confirm = client.post(
        reverse(f"admin:{prefix}_process_import"),
        {name: form.initial[name] for name in form.initial},
    )
    return preview, confirm


def copy_programme_with(programme):
    kol = programme.tiers["中型網紅"]
    TierBenefit.objects.create(tier=kol, position=0, text="專屬折扣碼")
    TierBenefit.objects.create(tier=kol, position=1, text="新品搶先體驗")
    Reward.objects.create(name="一個月銀卡", points_cost=1000, tier=programme.tiers["銀卡"])
    Promotion.objects.create(
        name="週年慶",
        starts_at=timezone.make_aware(dt.datetime(2026, 11, 1)),
        ends_at=timezone.make_aware(dt.datetime(2026, 11, 12)),
        multiplier=3,
    )
    partner = Partner.objects.create(
        code="brand-b", name="B 品牌", rate="0.800", min_tier=programme.tiers["金卡"]
    )
    PartnerBonus.objects.create(partner=partner, tier=programme.tiers["金卡"], percent=20)


def wipe_programme():
    """A fresh site: no programme at all."""
    PartnerBonus.objects.all().delete()
    Partner.objects.all().delete()
    Reward.objects.all().delete()
    Promotion.objects.all().delete()
    TierHistory.objects.all().delete()
    from membership.models import Member

    Member.objects.all().delete()
    Tier.objects.all().delete()
    VipGroup.objects.all().delete()
    Tag.objects.all().delete()


def programme_picture() -> dict:
    return {
        "tags": sorted(Tag.objects.values_list("name", "kind")),
        "groups": sorted(
            (
                g.name,
                g.priority,
                g.is_default,
                g.metric,
                g.window,
                sorted(t.name for t in g.entry_tags.all()),
            )
            for g in VipGroup.objects.all()
        ),
        "tiers": sorted(
            (
                t.group.name,
                t.rank,
                t.name,
                t.upgrade_threshold,
                t.retention_threshold,
                t.upgrade_gift,
                [b.text for b in t.benefits.all()],
            )
            for t in Tier.objects.select_related("group")
        ),
        "rewards": sorted(Reward.objects.values_list("name", "points_cost", "tier__name")),
        "promotions": sorted(Promotion.objects.values_list("name", "starts_at", "multiplier")),
        "partners": sorted(
            (
                p.code,
                p.rate,
                str(p.min_tier),
                sorted((str(b.tier), b.percent) for b in p.bonuses.all()),
            )
            for p in Partner.objects.all()
        ),
    }


def test_the_programme_copies_to_a_fresh_site_through_preview_and_confirm(
    programme, client, admin_user
):
    # given: the test site's programme, exported
    copy_programme_with(programme)
    before = programme_picture()
    client.force_login(admin_user)
    files = config_files(client)

    # when: the live site (empty) imports the files in order, preview then confirm
    wipe_programme()
    for name, prefix in CONFIG:
        fmt = JSON if name == "groups" else XLSX
        preview, confirm = import_file(client, prefix, files[name], fmt, f"{name}.x")
        assert confirm is not None, preview.content.decode()[:3000]
        assert confirm.status_code == 302

    # then
    assert programme_picture() == before


def test_a_confirmed_import_is_one_audit_entry(programme, client, admin_user):
    # given
    client.force_login(admin_user)
    data = "名稱,類型,說明\n新標籤,系統標籤,從測試站複製\n".encode("utf-8-sig")

    # when
    import_file(client, "membership_tag", data, CSV, "tags.csv")

    # then
    entry = AuditEntry.objects.get(action="tag.import")
    assert entry.actor_name == "root"
    assert entry.after == {"new": ["新標籤"], "updated": []}
    assert Tag.objects.get(name="新標籤").kind == Tag.Kind.SYSTEM


def test_an_imported_change_to_a_live_threshold_is_refused_and_changes_nobody(
    programme, client, admin_user
):
    # given: 王小明 spent NT$12,000 (銀卡); 金卡 needs NT$30,000 in the live version
    member = MemberFactory(name="王小明")
    services.record_order(
        member_id=member.pk, external_id="A-1", amount=12_000, placed_at=timezone.now()
    )
    client.force_login(admin_user)
    data = "VIP 群組,階層,名稱,升等門檻,續等門檻\n全館 VIP,3,金卡,12000,10000\n".encode("utf-8-sig")

    # when: a test site's file with a lower 金卡 threshold is imported
    preview, confirm = import_file(client, "membership_tier", data, CSV, "tiers.csv")

    # then: the row says why (a threshold changes through a programme version); nothing moves
    assert confirm is None
    assert "12000：生效中的規則須透過方案版本修改" in preview.content.decode()
    assert Tier.objects.get(pk=programme.tiers["金卡"].pk).upgrade_threshold == 30_000
    member.refresh_from_db()
    assert member.tier.name == "銀卡"


def test_a_preview_writes_nothing(programme, client, admin_user):
    client.force_login(admin_user)
    data = "名稱,類型,說明\n新標籤,系統標籤,\n".encode("utf-8-sig")

    preview = client.post(
        reverse("admin:membership_tag_import"),
        {"format": CSV, "import_file": SimpleUploadedFile("tags.csv", data)},
    )

    assert preview.status_code == 200
    assert "新標籤" in preview.content.decode()
    assert not Tag.objects.filter(name="新標籤").exists()
    assert not AuditEntry.objects.filter(action="tag.import").exists()


def test_a_config_row_that_breaks_a_rule_shows_its_error_and_nothing_is_written(
    programme, client, admin_user
):
    # given: a good tier and one whose retention is above its upgrade threshold
    client.force_login(admin_user)
    data = (
        "VIP 群組,階層,名稱,升等門檻,續等門檻\n"
        "全館 VIP,4,白金卡,60000,50000\n"
        "全館 VIP,5,鑽石卡,80000,90000\n"
    ).encode("utf-8-sig")

    # when
    preview, confirm = import_file(client, "membership_tier", data, CSV, "tiers.csv")

    # then
    assert confirm is None
    page = preview.content.decode()
    assert "續等門檻不可高於升等門檻" in page
    assert not Tier.objects.filter(name__in=["白金卡", "鑽石卡"]).exists()
    assert not AuditEntry.objects.filter(action="tier.import").exists()


def test_a_config_row_naming_an_unknown_group_shows_its_error(programme, client, admin_user):
    client.force_login(admin_user)
    data = "VIP 群組,階層,名稱,升等門檻,續等門檻\n不存在群組,1,某等級,0,0\n".encode("utf-8-sig")

    preview, confirm = import_file(client, "membership_tier", data, CSV, "tiers.csv")

    assert confirm is None
    assert "沒有「不存在群組」這個VIP 群組" in preview.content.decode()
    assert not Tier.objects.filter(name="某等級").exists()


def test_importing_configuration_needs_add_and_change_permissions(programme, client):
    client.force_login(staff_with("view_tag", "export_tag"))

    response = client.get(reverse("admin:membership_tag_import"))

    assert response.status_code == 403


def test_the_demo_operator_role_may_export_every_list(programme):
    # given
    from membership.management.commands.seed_demo import Command

    # when
    Command()._logins()

    # then
    from django.contrib.auth import get_user_model

    operator = get_user_model().objects.get(username="operator")
    for prefix, _header, _value in LISTS.values():
        app_label, model_name = prefix.split("_", 1)
        codename = {"member": "imports.export_members", "order": "imports.export_orders"}.get(
            model_name, f"{app_label}.export_{model_name}"
        )
        assert operator.has_perm(codename), codename


# -- in Chromium -------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_operator_exports_the_filtered_ledger_as_xlsx_in_chromium(
    live_server, browser, tmp_path, demo
):
    # given: two ledger entries, one earned and one adjusted
    member = MemberFactory(name="王小明", external_id="M1")
    points.earn(member_id=member.pk, points=100, source="action", source_ref="x", key="k-1")
    points.adjust(member_id=member.pk, points=-30, reason="更正", actor=UserFactory(), key="k-2")
    operator = operator_role()
    operator.set_password("pw-for-exports-1")
    operator.save()

    page = browser.new_page(locale="zh-TW", viewport=DESKTOP, accept_downloads=True)
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("使用者名稱").fill("operator")
    page.get_by_label("密碼").fill("pw-for-exports-1")
    page.get_by_role("button", name="登入").click()

    # when: the list filtered to 獲得, then 匯出 › xlsx › 送出
    page.goto(f"{live_server.url}/admin/points/entry/?kind__exact=earn")
    page.get_by_role("link", name="匯出", exact=True).click()
    page.get_by_label("格式").select_option(label="xlsx")
    shot(page, "export-ledger-desktop.png")
    with page.expect_download() as download:
        page.get_by_role("button", name="送出").click()
    path = tmp_path / "ledger.xlsx"
    download.value.save_as(path)

    # then
    sheet = openpyxl.load_workbook(path).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:5] == ("時間", "會員編號", "會員", "類型", "點數")
    assert [row[3:5] for row in rows[1:]] == [("獲得", 100)]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_operator_imports_tags_through_preview_and_confirm_in_chromium(
    live_server, browser, tmp_path, demo
):
    # given
    user = UserFactory(username="root", is_superuser=True)
    user.set_password("pw-for-exports-2")
    user.save()
    upload = tmp_path / "tags.csv"
    upload.write_text("名稱,類型,說明\n週年慶熟客,營運標籤,從測試站複製\n", encoding="utf-8-sig")

    page = browser.new_page(locale="zh-TW", viewport=DESKTOP)
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("使用者名稱").fill("root")
    page.get_by_label("密碼").fill("pw-for-exports-2")
    page.get_by_role("button", name="登入").click()
    page.goto(f"{live_server.url}/admin/membership/vipgroup/")
    assert page.get_by_role("link", name="匯出", exact=True).is_visible()
    assert page.get_by_role("link", name="匯入", exact=True).is_visible()
    shot(page, "vip-groups-with-import-export-desktop.png")

    page.goto(f"{live_server.url}/admin/membership/tag/import/")
    page.locator("input[type=file]").set_input_files(str(upload))
    page.get_by_label("格式").select_option(label="csv")
    with page.expect_navigation():
        page.get_by_role("button", name="送出").click()
    shot(page, "tag-import-preview-desktop.png")
    assert "週年慶熟客" in page.locator("table.import-preview").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="確認匯入").click()
    assert "匯入完成" in page.locator("ul.messagelist").inner_text()

    assert Tag.objects.filter(name="週年慶熟客").exists()


def test_a_group_naming_an_unknown_entry_tag_is_refused(programme, client, admin_user):
    client.force_login(admin_user)
    data = (
        "名稱,優先順序,預設群組,加入標籤,加入條件,計算指標,計算期間,審核週期（月）\n"
        "網紅 VIP,1,否,不存在的標籤,A tag or the qualifying amount,消費金額（NT$）,累計,12\n"
    ).encode("utf-8-sig")

    preview, confirm = import_file(client, "membership_vipgroup", data, CSV, "groups.csv")

    assert confirm is None
    assert "沒有這些標籤：不存在的標籤" in preview.content.decode()
    assert not VipGroup.objects.filter(name="網紅 VIP").exists()
