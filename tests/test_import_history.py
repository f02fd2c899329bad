"""Migration brings history: past orders, opening spend, tier and points; Excel files too."""

import datetime as dt
import io

import pytest
from django.utils import timezone

from imports.models import ImportJob
from membership.models import Member, Order, Refund, TierGrant
from points.models import Account, Entry, Lot
from tests.factories import MemberFactory
from tests.importing import check, csv_bytes, run

pytestmark = pytest.mark.usefixtures("english")

ORDER_HEADER = "訂單編號,會員編號,金額,訂購時間,通路,退款金額\n"
OPENING_HEADER = "external_id,name,opening_spend,opening_tier,opening_points\n"


def recent(days: int) -> str:
    return (timezone.localdate() - dt.timedelta(days=days)).strftime("%Y/%m/%d 14:30")


def import_orders(rows: list[str], **options):
    return run(csv_bytes(rows, ORDER_HEADER), kind="orders", filename="orders.csv", **options)


def test_past_orders_earn_the_tier_they_add_up_to(programme):
    MemberFactory(external_id="A1", name="王小明")

    import_orders([f"S1,A1,6000,{recent(40)},web,", f"S2,A1,4500,{recent(10)},store,"])

    member = Member.objects.select_related("tier").get(external_id="A1")
    assert member.tier.name == "銀卡"  # NT$10,500 ≥ 10,000
    assert member.last_order_at.date() == timezone.localdate() - dt.timedelta(days=10)


def test_a_refund_in_the_order_file_is_recorded_and_counts_against_the_tier(programme):
    MemberFactory(external_id="A1", name="王小明")

    import_orders([f"S1,A1,12000,{recent(20)},web,3000"])

    order = Order.objects.get(external_id="S1")
    assert (order.amount, order.refunded_amount) == (12_000, 3_000)
    assert Refund.objects.get(order=order).amount == 3_000
    assert Member.objects.get(external_id="A1").tier.name == "一般會員"  # NT$9,000 counts


def test_importing_the_same_order_file_twice_adds_nothing(programme):
    MemberFactory(external_id="A1", name="王小明")
    rows = [f"S1,A1,6000,{recent(40)},web,1000"]

    import_orders(rows)
    second = import_orders(rows)

    assert (second.created, second.updated) == (0, 1)
    assert Order.objects.count() == 1
    assert Refund.objects.count() == 1


def test_an_order_for_an_unknown_member_or_with_another_amount_is_refused(programme):
    MemberFactory(external_id="A1", name="王小明")
    import_orders([f"S1,A1,6000,{recent(40)},web,"])

    job = check(
        csv_bytes([f"S1,A1,7000,{recent(40)},web,", f"S2,ZZ,100,{recent(5)},web,"], ORDER_HEADER),
        kind="orders",
    )

    assert [(p.line, p.column) for p in job.problems.all()] == [(2, "external_id"), (3, "member")]
    assert "NT$6,000" in job.problems.first().message


def test_a_refund_larger_than_its_order_is_refused(db):
    job = check(csv_bytes([f"S1,A1,600,{recent(4)},web,700"], ORDER_HEADER), kind="orders")

    assert [p.column for p in job.problems.all()] == ["refunded_amount"]


def test_an_opening_spend_counts_in_the_current_window(programme):
    run(csv_bytes(["A1,王小明,12000,,"], OPENING_HEADER))

    member = Member.objects.get(external_id="A1")
    assert member.tier.name == "銀卡"
    assert Order.objects.get(member=member).external_id == "opening:A1"


def test_an_opening_tier_is_held_until_the_first_review(programme):
    run(csv_bytes(["A1,王小明,,金卡,"], OPENING_HEADER))

    member = Member.objects.get(external_id="A1")
    grant = TierGrant.objects.get(member=member)
    assert member.tier.name == "金卡"
    assert member.earned_tier.name == "一般會員"
    assert grant.ends_at.date() > timezone.localdate() + dt.timedelta(days=360)


def test_an_unknown_opening_tier_is_a_row_error(programme):
    job = check(csv_bytes(["A1,王小明,,白金卡,"], OPENING_HEADER))

    assert [(p.column, p.message) for p in job.problems.all()] == [("opening_tier", "no such tier")]


def test_an_opening_points_balance_is_one_ledger_entry_and_a_second_import_adds_nothing(db):
    data = csv_bytes(["A1,王小明,,,1500", "A2,林小美,,,"], OPENING_HEADER)

    run(data)
    run(data)

    account = Account.objects.get(member__external_id="A1")
    entry = Entry.objects.get(account=account)
    assert (account.balance, entry.points, entry.idempotency_key) == (
        1500,
        1500,
        "import-opening:A1",
    )
    assert Lot.objects.get(entry=entry).remaining == 1500
    assert not Account.objects.filter(member__external_id="A2", balance__gt=0).exists()


def test_a_different_opening_balance_for_the_same_member_is_refused(db):
    run(csv_bytes(["A1,王小明,,,1500"], OPENING_HEADER))

    job = check(csv_bytes(["A1,王小明,,,2000"], OPENING_HEADER))

    assert [p.message for p in job.problems.all()] == [
        "an opening balance of 1500 points was already imported"
    ]


def test_an_opening_balance_settles_a_recorded_shortfall_first(db):
    member = MemberFactory(external_id="A1", name="王小明")
    Account.objects.create(member=member, balance=0, shortfall=200)

    run(csv_bytes(["A1,王小明,,,1500"], OPENING_HEADER))

    account = Account.objects.get(member=member)
    assert (account.balance, account.shortfall) == (1300, 0)


def test_an_excel_workbook_imports_like_a_csv(db):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["會員編號", "姓名", "手機", "生日"])
    sheet.append(["A1", "王小明", 912345678, dt.date(1996, 3, 12)])  # Excel dropped the 0
    sheet.append(["A2", "林小美", "0912-000-111", "85/03/12"])
    buffer = io.BytesIO()
    book.save(buffer)

    job = run(buffer.getvalue(), filename="members.xlsx")

    assert job.status == ImportJob.Status.DONE
    assert dict(Member.objects.values_list("external_id", "phone")) == {
        "A1": "0912345678",
        "A2": "0912000111",
    }
    assert set(Member.objects.values_list("birthday", flat=True)) == {dt.date(1996, 3, 12)}


@pytest.mark.postgres
def test_opening_balances_on_postgresql_match_the_ledger(db):
    from django.core.management import call_command

    run(csv_bytes([f"A{i},會員{i},,,{100 + i}" for i in range(50)], OPENING_HEADER))

    call_command("check_points")
    assert sum(Account.objects.values_list("balance", flat=True)) == sum(range(100, 150))
