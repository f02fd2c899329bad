"""The admin and the member pages read in the operator's and member's language."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse
from django.utils import timezone, translation
from django_celery_beat.models import CrontabSchedule
from django_otp.plugins.otp_totp.models import TOTPDevice

from membership import services
from membership.models import Cause, Member
from membership.templatetags.humanize_nt import discount
from points.services import earn
from tests.factories import MemberFactory, OrderFactory


@pytest.fixture
def zh_hant():
    with translation.override("zh-hant"):
        yield


@pytest.mark.parametrize(
    ("percent_off", "zh", "en"),
    [
        (Decimal("5"), "95 折", "5% off"),
        (Decimal("10.0"), "9 折", "10% off"),
        (Decimal("12.5"), "87.5 折", "12.5% off"),
        (Decimal("15"), "85 折", "15% off"),
        (Decimal("0"), "—", "—"),
    ],
)
def test_a_discount_reads_as_taiwan_writes_it_and_as_english_does(percent_off, zh, en):
    with translation.override("zh-hant"):
        in_chinese = discount(percent_off)
    with translation.override("en"):
        in_english = discount(percent_off)

    assert (in_chinese, in_english) == (zh, en)


def test_the_member_page_shows_silver_as_95_zhe_in_chinese_and_5_percent_off_in_english(
    demo, client
):
    user = get_user_model().objects.create_user("amy", password="pw-for-tests-1")
    member = MemberFactory(user=user)
    OrderFactory(member=member, amount=12_000, placed_at=timezone.now() - dt.timedelta(days=3))
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    client.force_login(user)

    chinese = client.get(reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="zh-hant")
    english = client.get(reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="en")

    assert "95 折" in chinese.content.decode()
    assert "% off" not in chinese.content.decode()
    assert "5% off" in english.content.decode()


def test_the_tier_list_in_the_admin_shows_discounts_the_same_way(demo, admin_client):

    page = admin_client.get(reverse("admin:membership_tier_changelist"))

    assert "95 折" in page.content.decode()


def test_every_field_of_the_programme_has_a_chinese_label(zh_hant):
    untranslated = [
        f"{model._meta.label}.{field.name}"
        for label in ["membership", "points", "subscriptions", "b2b"]
        for model in apps.get_app_config(label).get_models()
        for field in model._meta.get_fields()
        if not field.auto_created and str(getattr(field, "verbose_name", "") or "").isascii()
    ]

    assert untranslated == []


def column_headers(page: str) -> dict[str, str]:
    """Each list column's name and its header text."""
    cells = re.findall(r'<th scope="col" class="[^"]*column-(\w+)[^"]*">(.*?)</th>', page, re.S)
    return {name: re.sub(r"<[^>]+>", " ", html).split()[0] for name, html in cells}


def test_the_ledger_list_names_its_columns_and_sources_in_chinese(programme, admin_client):
    member = MemberFactory()
    earn(member_id=member.pk, points=10, source="order", source_ref="shop:A-1", key="order:A-1")

    page = admin_client.get(reverse("admin:points_entry_changelist")).content.decode()

    headers = column_headers(page)
    assert (headers["account"], headers["source_label"]) == ("點數帳戶", "來源")
    assert '<td class="field-source_label">訂單</td>' in page


def test_the_gift_list_header_reads_member_in_chinese(demo, admin_client):
    member = MemberFactory()
    OrderFactory(member=member, amount=12_000, placed_at=timezone.now())
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)

    page = admin_client.get(reverse("admin:membership_giftissue_changelist")).content.decode()

    assert column_headers(page)["member"] == "會員"


def test_a_members_tier_history_tells_the_cause_of_a_change_from_the_operators_reason(
    demo, admin_client
):
    member = MemberFactory()
    OrderFactory(member=member, amount=12_000, placed_at=timezone.now())
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)

    page = admin_client.get(
        reverse("admin:membership_member_change", args=[member.pk])
    ).content.decode()

    headers = re.findall(r'<th class="column-(cause|reason)[^"]*">\s*([^<]+?)\s*<', page)
    assert dict(headers) == {"cause": "異動原因", "reason": "原因"}


def test_amounts_and_points_in_the_lists_read_with_thousands_separators(demo, admin_client):
    member = MemberFactory()
    services.record_order(
        member_id=member.pk, external_id="A-1", amount=12_000, placed_at=timezone.now()
    )
    earn(member_id=member.pk, points=1_500, source="action", source_ref="x", key="k-1")

    orders = admin_client.get(reverse("admin:membership_order_changelist")).content.decode()
    accounts = admin_client.get(reverse("admin:points_account_changelist")).content.decode()

    assert 'field-amount_shown">12,000</td>' in orders
    assert column_headers(orders)["amount_shown"] == "金額（NT$）"
    assert 'field-balance_shown">1,500</td>' in accounts  # the order's points are pending


def test_django_celery_beat_screens_read_in_chinese(admin_client):
    CrontabSchedule.objects.create(minute="0", hour="3")

    add = admin_client.get(reverse("admin:django_celery_beat_periodictask_add")).content.decode()
    listing = admin_client.get(
        reverse("admin:django_celery_beat_crontabschedule_changelist")
    ).content.decode()

    for word in ["工作（已登錄）", "固定間隔排程", "定時排程", "啟用", "說明"]:
        assert word in add
    for english in ["Task (registered)", "Interval Schedule", "Crontab Schedule", "Description"]:
        assert english not in add
    assert "排程說明" in listing
    assert "Human readable" not in listing


def test_the_sidebar_names_django_otps_devices_in_chinese(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()

    for word in ["驗證器 App（雙重驗證）", "驗證器裝置", "備用驗證碼"]:
        assert word in page
    for english in ["Otp_Totp", "OTP_TOTP", "TOTP devices", "Static devices"]:
        assert english not in page


def test_the_totp_device_list_names_its_columns_in_chinese(admin_user, admin_client):
    TOTPDevice.objects.create(user=admin_user, name="手機")

    page = admin_client.get(reverse("admin:otp_totp_totpdevice_changelist")).content.decode()

    assert {"使用者", "裝置名稱", "已確認"} <= set(column_headers(page).values())


def test_the_totp_device_page_explains_its_fields_in_chinese(admin_user, admin_client):
    device = TOTPDevice.objects.create(user=admin_user, name="手機")

    page = admin_client.get(
        reverse("admin:otp_totp_totpdevice_change", args=[device.pk])
    ).content.decode()

    assert "每組驗證碼有效的秒數。" in page
    for english in ["The time step in seconds", "Is this device ready for use?"]:
        assert english not in page


def test_the_password_reset_email_says_chongshe_like_the_page(db, client):
    user = get_user_model().objects.create_user("amy", "amy@example.com", "pw-for-tests-1")
    Member.objects.create(
        user=user, name="王小美", email="amy@example.com", joined_at=timezone.now()
    )

    page = client.post(
        reverse("password_reset"), {"email": "amy@example.com"}, HTTP_ACCEPT_LANGUAGE="zh-hant"
    )

    assert page.status_code == 302
    message = mail.outbox[0]
    assert "重設" in message.subject
    assert "重置" not in message.subject + message.body


def test_the_language_switcher_keeps_its_own_word(db, client):
    page = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()

    assert ">切換</button>" in page


def test_a_refused_page_says_so_in_chinese(db, client):
    user = get_user_model().objects.create_user("yating", password="x", is_staff=True)
    client.force_login(user)

    page = client.get(reverse("admin:membership_auditentry_add"), HTTP_ACCEPT_LANGUAGE="zh-hant")

    assert page.status_code == 403
    assert "沒有權限" in page.content.decode()
    assert "Forbidden" not in page.content.decode()
