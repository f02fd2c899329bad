"""The audit log reads in words: labels, names instead of ids, Asia/Taipei, no empty entries."""

import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import time_machine
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from membership import services
from membership.admin.common import registered_admins
from membership.admin.groups import AuditedConfigMixin
from membership.audit_display import (
    ACTION_LABELS,
    action_label,
    object_type_label,
    readable_entry,
)
from membership.models import AuditEntry, Cause, Member
from tests import test_browser
from tests.factories import MemberFactory, OrderFactory, UserFactory, staff_with
from tests.test_browser import shot

chromium = test_browser.browser  # a fixture: Debian's Chromium through Playwright
ROOT = Path(__file__).resolve().parent.parent
TAIPEI_NEW_YEAR = dt.datetime(
    2025, 12, 31, 16, 30, 5, tzinfo=dt.UTC
)  # 2026-01-01 00:30:05 in Taipei


class FormData(HTMLParser):
    """What the browser would post from a form: its inputs, selects and textareas as rendered."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id, self.inside, self.data = form_id, False, []
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        if not self.inside or "disabled" in attrs:
            return
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in {"submit", "button", "file"}:
            if attrs.get("type") in {"checkbox", "radio"} and "checked" not in attrs:
                return
            self.data.append((name, attrs.get("value") or ""))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attrs:
            self.data.append((self._select, attrs.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea = name
            self.data.append((name, ""))

    def handle_data(self, data):
        if self._textarea:
            name, value = self.data[-1]
            self.data[-1] = (name, value + data)

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            if self._textarea:
                name, value = self.data[-1]
                self.data[-1] = (name, value.removeprefix("\n"))
            self._textarea = None

    def as_post(self) -> dict[str, list[str]]:
        post: dict[str, list[str]] = {}
        for name, value in self.data:
            post.setdefault(name, []).append(value)
        return post


class ChangeRows(HTMLParser):
    """The rows of the field tables on a page: (field, before, after, highlighted)."""

    def __init__(self):
        super().__init__()
        self.rows, self._row, self._in_table = [], None, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "audit-changes" in (attrs.get("class") or ""):
            self._in_table += 1
        elif tag == "tr" and self._in_table:
            self._row = {"cells": [], "changed": "audit-changed" in (attrs.get("class") or "")}
        elif tag in {"th", "td"} and self._row is not None:
            self._row["cells"].append("")

    def handle_data(self, data):
        if self._row is not None and self._row["cells"]:
            self._row["cells"][-1] += data.strip()

    def handle_endtag(self, tag):
        if tag == "table" and self._in_table:
            self._in_table -= 1
        elif tag == "tr" and self._row is not None:
            if self._row["cells"] and self._row["cells"][0] != "欄位":
                self.rows.append((*self._row["cells"], self._row["changed"]))
            self._row = None


def change_rows(html: str) -> list[tuple]:
    parser = ChangeRows()
    parser.feed(html)
    return parser.rows


def posted_as_rendered(client, url: str, form_id: str, **changes) -> dict:
    page = client.get(url)
    assert page.status_code == 200
    parser = FormData(form_id)
    parser.feed(page.content.decode())
    return {**parser.as_post(), **changes}


@pytest.fixture
def silver_member(programme):
    member = MemberFactory(name="陳美玲", external_id="C-1001", phone="0912345678")
    OrderFactory(member=member, amount=12_000)
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    member.refresh_from_db()
    assert member.tier.name == "銀卡"
    return member


def lift_to_gold(member, actor) -> AuditEntry:
    tier = member.group.tiers.get(name="金卡")
    services.adjust_tier(member_id=member.pk, tier=tier, reason="客訴補償", actor=actor)
    return AuditEntry.objects.get(action="member.adjust_tier", object_id=str(member.pk))


def changelist(client, **params):
    response = client.get(reverse("admin:membership_auditentry_changelist"), params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


# -- labels ---------------------------------------------------------------------------


def test_actions_and_object_types_read_as_traditional_chinese_labels():
    # given the site's default language
    # when / then
    assert action_label("member.adjust_tier") == "調整等級"
    assert action_label("order.refund") == "訂單退款"
    assert object_type_label("membership.member") == "會員"
    assert object_type_label("b2b.enterprise") == "企業"


def test_actions_and_object_types_read_as_english_labels(english):
    assert action_label("member.adjust_tier") == "Adjust tier"
    assert action_label("vipgroup.reorder") == "Reorder VIP groups"
    assert object_type_label("membership.member") == "Member"


def test_an_action_nobody_registered_still_reads_with_its_object_type():
    # given actions the registry does not know
    # when / then: a known verb reads in full, another verb keeps the object's name
    assert action_label("member.delete") == "刪除會員"
    assert action_label("order.reopen") == "訂單 · reopen"
    assert action_label("mystery") == "mystery"


def recorded_actions() -> set[str]:
    """Every action string in the code: action="..." arguments and _audit(...) calls."""
    found = set()
    for app in ["membership", "points", "b2b", "subscriptions", "imports", "segments", "api"]:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                if "action=" in line or "_audit(" in line:
                    found |= set(re.findall(r'"([a-z_]+\.[a-z_]+)"', line))
    for model, model_admin in registered_admins():
        if isinstance(model_admin, AuditedConfigMixin):
            for audited in [model, *(inline.model for inline in model_admin.inlines)]:
                found |= {f"{audited._meta.model_name}.{v}" for v in ["add", "change", "delete"]}
    return found


def test_every_action_the_code_records_has_a_label():
    # given every action string in the code today
    actions = recorded_actions()

    # when / then
    assert len(actions) >= 20  # the scan itself found the code's actions
    assert sorted(actions - set(ACTION_LABELS)) == []


# -- the field table ---------------------------------------------------------------------


def test_a_tier_adjustment_shows_tier_names_not_ids(silver_member, admin_user):
    # given an operator lifts a 銀卡 member to 金卡
    entry = lift_to_gold(silver_member, admin_user)

    # when
    rows = {row.label: row for row in readable_entry(entry).rows}

    # then
    assert (rows["等級"].before, rows["等級"].after, rows["等級"].changed) == ("銀卡", "金卡", True)
    assert (rows["VIP 群組"].before, rows["VIP 群組"].changed) == ("全館 VIP", False)
    assert rows["鎖定至"].after == "—"


def test_the_entry_page_shows_a_field_table_with_names_and_highlights_only_changes(
    silver_member, admin_user, admin_client
):
    # given
    entry = lift_to_gold(silver_member, admin_user)

    # when
    page = admin_client.get(reverse("admin:membership_auditentry_change", args=[entry.pk]))

    # then
    text = page.content.decode()
    assert page.status_code == 200
    assert "調整等級" in text
    assert "客訴補償" in text
    rows = change_rows(text)
    assert ("等級", "銀卡", "金卡", True) in rows
    assert ("VIP 群組", "全館 VIP", "全館 VIP", False) in rows
    assert f"<td>{silver_member.tier_id}</td>" not in text


def test_a_threshold_change_shows_nt_dollars_with_thousands_separators(programme, admin_user):
    # given a tier of a group that counts spend, its upgrade threshold raised
    tier = programme.general.tiers.get(name="銀卡")
    before = services.snapshot(tier)
    tier.upgrade_threshold = 12_000
    tier.free_shipping = True
    entry = services.record_audit(
        actor=admin_user,
        action="tier.change",
        obj=tier,
        before=before,
        after=services.snapshot(tier),
    )

    # when
    rows = {row.label: row for row in readable_entry(entry).rows}

    # then
    assert (rows["升等門檻"].before, rows["升等門檻"].after) == ("NT$10,000", "NT$12,000")
    assert (rows["免運費"].before, rows["免運費"].after) == ("否", "是")
    assert (rows["VIP 群組"].after, rows["VIP 群組"].changed) == ("全館 VIP", False)
    assert [row.label for row in rows.values() if row.changed] == ["升等門檻", "免運費"]


def test_choices_read_as_their_labels(programme, admin_user):
    # given a member whose language was changed
    member = MemberFactory(language=Member.Language.ZH_HANT)
    entry = services.record_audit(
        actor=admin_user,
        action="member.change",
        obj=member,
        before={"language": "zh-hant"},
        after={"language": "en"},
    )

    # when
    row = readable_entry(entry).rows[0]

    # then
    assert (row.label, row.before, row.after) == ("語言", "繁體中文", "English")


def test_a_tier_deleted_since_reads_as_deleted_not_as_a_bare_number(programme, admin_user):
    member = MemberFactory()
    entry = services.record_audit(
        actor=admin_user,
        action="member.adjust_tier",
        obj=member,
        before={"tier": 999_999},
        after={},
    )

    assert readable_entry(entry).rows[0].before == "#999999（已刪除）"


# -- Asia/Taipei ---------------------------------------------------------------------------


def test_times_in_the_list_the_title_and_the_fields_are_in_asia_taipei(programme, admin_client):
    # given an entry recorded at 16:30:05 UTC, about a moment also at 16:30:05 UTC
    member = MemberFactory(name="林小華")
    with time_machine.travel(TAIPEI_NEW_YEAR, tick=False):
        entry = services.record_audit(
            actor=None,
            action="member.change",
            obj=member,
            before={"joined_at": "2025-12-31T16:30:05+00:00"},
            after={"joined_at": "2025-12-31T16:00:00+00:00"},
        )

    # when
    listing = admin_client.get(reverse("admin:membership_auditentry_changelist")).content.decode()
    page = admin_client.get(reverse("admin:membership_auditentry_change", args=[entry.pk]))
    text = page.content.decode()

    # then
    assert "2026-01-01 00:30:05" in listing
    assert "16:30" not in listing + text
    assert page.context["subtitle"].startswith("2026-01-01 00:30:05")
    assert str(entry).startswith("2026-01-01 00:30:05")
    assert change_rows(text) == [("加入時間", "2026-01-01 00:30:05", "2026-01-01 00:00:00", True)]


# -- a save that changes nothing --------------------------------------------------------------


def test_saving_an_unchanged_member_form_writes_no_audit_entry_and_keeps_the_seconds(
    programme, client
):
    # given a member who joined at 14:03:27.5 and an operator who opens their page
    joined = dt.datetime(2024, 5, 6, 6, 3, 27, 500_000, tzinfo=dt.UTC)
    member = MemberFactory(name="張志明", joined_at=joined)
    operator = staff_with("view_member", "change_member")
    client.force_login(operator)
    url = reverse("admin:membership_member_change", args=[member.pk])
    form = posted_as_rendered(client, url, "member_form")

    # when the operator saves without changing anything
    response = client.post(url, form)

    # then
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.joined_at == joined
    assert AuditEntry.objects.count() == 0
    assert LogEntry.objects.count() == 0


def test_the_member_form_shows_joined_at_with_its_seconds(programme, client):
    member = MemberFactory(joined_at=dt.datetime(2024, 5, 6, 6, 3, 27, tzinfo=dt.UTC))
    client.force_login(staff_with("view_member", "change_member"))

    form = posted_as_rendered(
        client, reverse("admin:membership_member_change", args=[member.pk]), "member_form"
    )

    assert form["joined_at_1"] == ["14:03:27"]


def test_changing_one_field_audits_that_field_and_keeps_the_others(programme, client):
    # given
    joined = dt.datetime(2024, 5, 6, 6, 3, 27, 500_000, tzinfo=dt.UTC)
    member = MemberFactory(name="張志明", joined_at=joined)
    client.force_login(staff_with("view_member", "change_member"))
    url = reverse("admin:membership_member_change", args=[member.pk])
    form = posted_as_rendered(client, url, "member_form", name=["張志銘"])

    # when
    response = client.post(url, form)

    # then
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.name, member.joined_at) == ("張志銘", joined)
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.before, entry.after) == (
        "member.change",
        {"name": "張志明"},
        {"name": "張志銘"},
    )


# -- filters, search and the member page ----------------------------------------------------------


@pytest.fixture
def three_entries(silver_member, admin_user):
    """An adjustment by admin, a refund by a second operator, a tag change by the system."""
    other = UserFactory(username="operator2", is_staff=True)
    stranger = MemberFactory(name="路人甲", phone="0987654321")
    with time_machine.travel(timezone.now() - dt.timedelta(days=40)):
        adjusted = lift_to_gold(silver_member, admin_user)
    order = silver_member.orders.get()
    services.record_refund(order_id=order.pk, external_id="R-1", amount=2_000, actor=other)
    refund = AuditEntry.objects.get(action="order.refund")
    tags = services.record_audit(
        actor=None, action="member.tags", obj=stranger, before={"tags": []}, after={"tags": ["KOL"]}
    )
    return adjusted, refund, tags


def test_the_audit_list_filters_by_action_actor_object_type_and_date(three_entries, admin_client):
    adjusted, refund, tags = three_entries

    assert changelist(admin_client, action="member.adjust_tier") == [adjusted]
    assert changelist(admin_client, actor=str(refund.actor_id)) == [refund]
    assert changelist(admin_client, actor="system") == [tags]
    assert changelist(admin_client, object_type="membership.order") == [refund]
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    since = {"created_at__gte": str(midnight - dt.timedelta(days=7))}
    assert set(changelist(admin_client, **since)) == {refund, tags}


def test_the_action_filter_offers_the_labels(three_entries, admin_client):
    page = admin_client.get(reverse("admin:membership_auditentry_changelist"))

    text = page.content.decode()
    assert '<a href="?action=member.adjust_tier">調整等級</a>' in text


def test_searching_by_a_member_finds_their_entries_and_their_orders(three_entries, admin_client):
    adjusted, refund, tags = three_entries

    for term in ["陳美玲", "C-1001", "0912-345-678", "+886 912 345 678"]:
        assert set(changelist(admin_client, q=term)) == {adjusted, refund}, term
    assert changelist(admin_client, q="路人甲") == [tags]


def test_a_bad_filter_value_is_ignored_not_an_error(three_entries, admin_client):
    assert len(changelist(admin_client, actor="nobody", member="x")) == 3


def test_the_member_page_shows_their_entries_in_words_with_a_link_to_each(
    three_entries, silver_member, admin_client
):
    adjusted, refund, _tags = three_entries

    page = admin_client.get(reverse("admin:membership_member_change", args=[silver_member.pk]))

    text = page.content.decode()
    assert "調整等級" in text
    assert "訂單退款" in text
    assert ("等級", "銀卡", "金卡", True) in change_rows(text)
    assert "<strong>NT$2,000</strong>" in text
    assert reverse("admin:membership_auditentry_change", args=[adjusted.pk]) in text
    assert f"?member={silver_member.pk}" in text


def test_the_member_link_lists_exactly_that_members_entries(
    three_entries, silver_member, admin_client
):
    adjusted, refund, _tags = three_entries

    assert set(changelist(admin_client, member=str(silver_member.pk))) == {adjusted, refund}


# -- in a browser -----------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_operator_reads_an_adjustment_from_the_member_page_in_chromium(
    live_server, chromium, demo
):
    # given the demo programme, a 銀卡 member lifted to 金卡 and locked by an operator
    operator = staff_with("view_member", "change_member", "view_auditentry", "adjust_tier")
    operator.username = "operator"
    operator.set_password("pw-for-browser-3")
    operator.save()
    member = MemberFactory(name="王小明", external_id="M-20031", phone="0912345678")
    OrderFactory(member=member, amount=12_000, placed_at=timezone.now())
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    member.refresh_from_db()
    services.adjust_tier(
        member_id=member.pk,
        tier=member.group.tiers.get(name="金卡"),
        reason="年度大客戶，主管核准提前升等",
        actor=operator,
        locked_until=timezone.localdate() + dt.timedelta(days=180),
    )

    # when the operator opens the member, unfolds the audit log and opens the entry
    page = chromium.new_page(locale="zh-TW", viewport={"width": 1366, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("使用者名稱").fill("operator")
    page.get_by_label("密碼").fill("pw-for-browser-3")
    page.get_by_role("button", name="登入").click()
    page.goto(f"{live_server.url}/admin/membership/member/{member.pk}/change/")
    page.locator("summary", has_text="稽核紀錄").click()
    section = page.locator("table.audit-entries")
    section.scroll_into_view_if_needed()
    section.screenshot(path=str(test_browser.SHOTS / "audit-member-section-desktop.png"))
    page.get_by_role("link", name="查看紀錄").first.click()

    # then
    shot(page, "audit-entry-desktop.png")
    assert "operator 調整等級 王小明" in page.locator("#content h2").first.inner_text()
    changes = page.locator("table.audit-changes").inner_text()
    assert "等級\t銀卡\t金卡" in changes
    assert "鎖定等級\t—\t金卡" in changes
    assert page.get_by_text("年度大客戶，主管核准提前升等").is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1366
    page.goto(f"{live_server.url}/admin/membership/auditentry/?member={member.pk}")
    shot(page, "audit-list-desktop.png")
    assert page.locator("#result_list tbody tr").count() == 1


def test_the_groups_priority_reads_as_the_order_of_their_names(programme, admin_user):
    entry = services.record_audit(
        actor=admin_user,
        action="vipgroup.reorder",
        object_type="membership.vipgroup",
        object_id="*",
        object_repr="VIP 群組優先順序",
        before={"priority": ["KOL 合作", "員工福利"]},
        after={"priority": ["員工福利", "KOL 合作"]},
    )

    row = readable_entry(entry).rows[0]

    assert (row.before, row.after) == ("KOL 合作 › 員工福利", "員工福利 › KOL 合作")


def test_a_points_adjustment_reads_in_english(english, programme, admin_user):
    # given
    member = MemberFactory()
    entry = services.record_audit(
        actor=admin_user,
        action="points.adjust",
        obj=member,
        after={"points": 1500, "entry": 42},
        reason="goodwill",
    )

    # when
    readable = readable_entry(entry)

    # then
    assert (readable.action, readable.object_type) == ("Adjust points", "Member")
    assert [(row.label, row.after) for row in readable.rows] == [
        ("points", "1,500"),
        ("ledger entry", "#42"),
    ]
