"""The member's data rights (PDPA art. 3, 10, 11): their own data as a file, an operator's
export for a request made elsewhere, and erasure that keeps amounts, ledgers and the audit."""

import csv
import datetime as dt
import io
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from membership import services
from membership.models import AuditEntry, Cause, Member, Order, TierHistory
from membership.services import privacy
from points import services as points
from points.models import Account, Entry
from tests.factories import MemberFactory, staff_with

PASSWORD = "pw-for-privacy-1"


def member_with_history(username: str, name: str, phone: str, order_ref: str) -> Member:
    user = get_user_model().objects.create_user(username, email=f"{username}@example.com")
    user.set_password(PASSWORD)
    user.save()
    member = MemberFactory(
        user=user, name=name, phone=phone, email=f"{username}@example.com",
        birthday=dt.date(1990, 3, 12),
    )  # fmt: skip
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    order = services.record_order(
        member_id=member.pk,
        external_id=order_ref,
        amount=12_000,
        placed_at=timezone.now() - dt.timedelta(days=20),
    ).order
    services.record_refund(order_id=order.pk, external_id=f"{order_ref}-R", amount=2_000)
    points.earn(
        member_id=member.pk, points=300, source="test", source_ref=order_ref, key=f"k-{order_ref}"
    )
    member.refresh_from_db()
    return member


@pytest.fixture
def amy(demo):
    return member_with_history("amy", "林艾咪", "0912345678", "A-1")


@pytest.fixture
def bob(demo):
    return member_with_history("bob", "陳小寶", "0987654321", "B-1")


def read_zip(content: bytes) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {
            name: list(csv.reader(io.StringIO(archive.read(name).decode("utf-8-sig"))))
            for name in archive.namelist()
        }


# -- the member's own download -------------------------------------------------------------


def test_a_member_downloads_their_own_data_as_a_zip_of_csv_files(client, amy, bob):
    # given
    client.force_login(amy.user)

    # when
    response = client.get(reverse("my_data"))

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    files = read_zip(response.content)
    assert set(files) == {
        "profile.csv",
        "orders.csv",
        "refunds.csv",
        "points.csv",
        "tier_history.csv",
        "gifts.csv",
        "subscriptions.csv",
    }
    profile = dict(files["profile.csv"][1:])
    assert "林艾咪" in profile.values()
    assert "0912345678" in profile.values()
    assert [row[0] for row in files["orders.csv"][1:]] == ["A-1"]
    assert files["orders.csv"][1][3:5] == ["12000", "2000"]
    assert [row[1] for row in files["refunds.csv"][1:]] == ["A-1-R"]
    assert len(files["tier_history.csv"]) > 1


def test_the_download_holds_nothing_of_another_member(client, amy, bob):
    client.force_login(amy.user)

    content = client.get(reverse("my_data")).content

    text = "".join(
        cell for rows in read_zip(content).values() for row in rows for cell in row
    )  # fmt: skip
    for foreign in ("陳小寶", "0987654321", "bob@example.com", "B-1"):
        assert foreign not in text


def test_the_download_is_the_logged_in_members_whatever_the_address_asks(client, amy, bob):
    client.force_login(bob.user)

    content = client.get(reverse("my_data") + f"?member={amy.pk}").content

    profile = dict(read_zip(content)["profile.csv"][1:])
    assert "陳小寶" in profile.values()
    assert "林艾咪" not in profile.values()


def test_a_visitor_who_is_not_logged_in_is_sent_to_log_in(client, amy):
    response = client.get(reverse("my_data"))

    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_the_members_download_is_audited(client, amy):
    client.force_login(amy.user)

    client.get(reverse("my_data"))

    entry = AuditEntry.objects.get(action="member.data_export", object_id=str(amy.pk))
    assert entry.actor == amy.user
    assert entry.after == {"by": "member"}


def test_the_member_page_links_to_the_download(client, amy):
    client.force_login(amy.user)

    page = client.get(reverse("members:my_tier")).content.decode()

    assert reverse("my_data") in page
    assert "下載我的資料" in page


def test_a_formula_in_a_name_is_written_as_text(client, demo):
    member = member_with_history("eve", "=HYPERLINK(1)", "0911111111", "E-1")
    client.force_login(member.user)

    files = read_zip(client.get(reverse("my_data")).content)

    assert "'=HYPERLINK(1)" in dict(files["profile.csv"][1:]).values()


# -- the operator's export -----------------------------------------------------------------


def test_an_operator_exports_a_members_data_from_the_member_list(client, amy, bob):
    # given
    operator = staff_with("view_member")
    client.force_login(operator)

    # when
    response = client.post(
        reverse("admin:membership_member_changelist"),
        {
            "action": "export_personal_data_action",
            "_selected_action": [amy.pk],
            "reason": "Request by letter 2026-11-20",
        },
    )

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert [row[0] for row in read_zip(response.content)["orders.csv"][1:]] == ["A-1"]
    entry = AuditEntry.objects.get(action="member.data_export", object_id=str(amy.pk))
    assert (entry.actor, entry.reason, entry.after) == (
        operator,
        "Request by letter 2026-11-20",
        {"by": "operator"},
    )


def test_the_export_takes_one_member_at_a_time(client, amy, bob):
    client.force_login(staff_with("view_member"))

    response = client.post(
        reverse("admin:membership_member_changelist"),
        {"action": "export_personal_data_action", "_selected_action": [amy.pk, bob.pk]},
        follow=True,
    )

    assert "只能選擇一位會員" in response.content.decode()
    assert not AuditEntry.objects.filter(action="member.data_export").exists()


# -- erasure -------------------------------------------------------------------------------


def erase_in_admin(client, member, reason="PDPA request #12"):
    return client.post(
        reverse("admin:membership_member_changelist"),
        {
            "action": "erase_personal_data_action",
            "_selected_action": [member.pk],
            "post": "yes",
            "reason": reason,
        },
    )


def test_the_erase_action_asks_for_confirmation_first(client, amy):
    client.force_login(staff_with("view_member", "delete_member"))

    response = client.post(
        reverse("admin:membership_member_changelist"),
        {"action": "erase_personal_data_action", "_selected_action": [amy.pk]},
    )

    assert response.status_code == 200
    assert "林艾咪" in response.content.decode()
    amy.refresh_from_db()
    assert amy.name == "林艾咪"


def test_erasing_a_member_replaces_who_they_are(client, amy):
    # given
    client.force_login(staff_with("view_member", "delete_member"))

    # when
    response = erase_in_admin(client, amy)

    # then
    assert response.status_code == 302
    amy.refresh_from_db()
    amy.user.refresh_from_db()
    assert amy.name == f"已刪除會員 #{amy.pk}"
    assert (amy.phone, amy.email, amy.birthday) == ("", "", None)
    assert amy.user.username == f"erased-member-{amy.pk}"
    assert (amy.user.email, amy.user.is_active) == ("", False)
    assert not amy.user.has_usable_password()


def test_erasure_keeps_orders_amounts_and_the_points_ledger_balanced(client, amy, bob):
    # given
    orders_before = list(
        Order.objects.order_by("pk").values_list("pk", "amount", "refunded_amount")
    )
    entries_before = Entry.objects.filter(account__member=amy).count()
    balance_before = Account.objects.get(member=amy).balance
    history_before = TierHistory.objects.filter(member=amy).count()
    client.force_login(staff_with("view_member", "delete_member"))

    # when
    erase_in_admin(client, amy)

    # then
    assert (
        list(Order.objects.order_by("pk").values_list("pk", "amount", "refunded_amount"))
        == orders_before
    )
    assert Entry.objects.filter(account__member=amy).count() == entries_before
    assert Account.objects.get(member=amy).balance == balance_before
    assert (
        Entry.objects.filter(account__member=amy).aggregate(s=Sum("points"))["s"] == balance_before
    )
    assert TierHistory.objects.filter(member=amy).count() == history_before
    call_command("check_points")


def test_erasure_is_audited_without_the_old_values(client, amy):
    audit_before = AuditEntry.objects.count()
    operator = staff_with("view_member", "delete_member")
    client.force_login(operator)

    erase_in_admin(client, amy, reason="Request by e-mail 2026-11-21")

    entry = AuditEntry.objects.get(action="member.erase")
    assert (entry.actor, entry.reason) == (operator, "Request by e-mail 2026-11-21")
    assert entry.before == {"erased": ["name", "phone", "email", "birthday", "user"]}
    assert "林艾咪" not in str(entry.before) + str(entry.after) + entry.object_repr
    assert AuditEntry.objects.count() == audit_before + 1


def test_an_erased_member_can_no_longer_log_in_and_their_session_ends(client, amy):
    member_client = client.__class__()
    member_client.force_login(amy.user)
    assert member_client.get(reverse("members:my_tier")).status_code == 200

    privacy.erase_member(member_id=amy.pk, actor=None, reason="PDPA request")

    assert member_client.get(reverse("members:my_tier")).status_code == 302
    login = client.post("/login/", {"username": "amy", "password": PASSWORD})
    assert login.status_code == 200
    assert "_auth_user_id" not in client.session


def test_erasure_needs_a_reason_and_changes_nothing_without_one(amy):
    with pytest.raises(ValidationError):
        privacy.erase_member(member_id=amy.pk, actor=None, reason="  ")

    amy.refresh_from_db()
    assert amy.name == "林艾咪"
    assert not AuditEntry.objects.filter(action="member.erase").exists()


def test_the_admin_shows_the_message_when_the_reason_is_missing(client, amy):
    client.force_login(staff_with("view_member", "delete_member"))

    response = erase_in_admin(client, amy, reason="")

    assert response.status_code == 200
    assert "請填寫刪除的原因" in response.content.decode()
    amy.refresh_from_db()
    assert amy.name == "林艾咪"


def test_a_member_is_erased_once(amy):
    privacy.erase_member(member_id=amy.pk, actor=None, reason="PDPA request")

    with pytest.raises(ValidationError):
        privacy.erase_member(member_id=amy.pk, actor=None, reason="again")

    assert AuditEntry.objects.filter(action="member.erase").count() == 1


def test_staff_without_the_delete_permission_cannot_erase(client, amy):
    client.force_login(staff_with("view_member", "change_member"))

    response = erase_in_admin(client, amy)

    amy.refresh_from_db()
    assert amy.name == "林艾咪"
    assert response.status_code in (200, 302)
    assert not AuditEntry.objects.filter(action="member.erase").exists()
