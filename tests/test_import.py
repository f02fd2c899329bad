"""Member import from CSV: encodings, headers, normalisation, bad rows, all or nothing."""

import datetime as dt

import pytest
from django.core.management import CommandError, call_command

from membership.importing import import_members, normalise_phone, parse_date
from membership.models import AuditEntry, Member
from tests.factories import MemberFactory, TagFactory, UserFactory

ZH_HEADER = "會員編號,姓名,手機,電子郵件,生日,標籤\n"
EN_HEADER = "external_id,name,phone,email,birthday,tags\n"


def csv_bytes(rows: list[str], header: str = EN_HEADER, encoding: str = "utf-8") -> bytes:
    return (header + "\n".join(rows) + "\n").encode(encoding)


def run(data: bytes, **kwargs):
    kwargs.setdefault("dry_run", False)
    return import_members(data, filename="members.csv", actor=UserFactory(), **kwargs)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("0912-345-678", "0912345678"),
        ("+886 912 345 678", "0912345678"),
        ("886912345678", "0912345678"),
    ],
)
def test_taiwanese_mobile_numbers_are_stored_in_one_form(raw, clean):
    assert normalise_phone(raw) == clean


@pytest.mark.parametrize(
    ("raw", "day"),
    [
        ("1996-03-12", dt.date(1996, 3, 12)),
        ("85/03/12", dt.date(1996, 3, 12)),
        ("民國85年3月12日", dt.date(1996, 3, 12)),
        ("101/2/29", dt.date(2012, 2, 29)),
    ],
)
def test_birthdays_read_iso_and_roc_dates(raw, day):
    assert parse_date(raw) == day


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp950"])
def test_each_encoding_imports_the_same_member(db, encoding):
    data = csv_bytes(["A1,王小明,0912-345-678,Amy@Example.COM,85/03/12,"], ZH_HEADER, encoding)

    report = run(data)

    member = Member.objects.get(external_id="A1")
    assert report.written
    assert (member.name, member.phone, member.email, member.birthday) == (
        "王小明",
        "0912345678",
        "amy@example.com",
        dt.date(1996, 3, 12),
    )


def test_a_bom_never_leaks_into_the_first_column_name(db):
    data = csv_bytes(["A1,王小明,,,,"], EN_HEADER, "utf-8-sig")

    report = run(data)

    assert report.errors == []
    assert Member.objects.filter(external_id="A1").exists()


def test_three_bad_rows_among_1000_are_listed_exactly_by_the_dry_run_which_writes_nothing(
    db,
):
    rows = [f"M{i},會員{i},09{i:08d},m{i}@example.com,1990-01-01," for i in range(1000)]
    rows[10] = "M10,會員10,12345,m10@example.com,1990-01-01,"  # bad phone, line 12
    rows[500] = "M500,會員500,0900000500,not-an-email,1990-01-01,"  # bad e-mail, line 502
    rows[998] = "M998,會員998,0900000998,m998@example.com,85/13/40,"  # bad date, line 1000

    report = run(csv_bytes(rows), dry_run=True)

    assert report.total == 1000
    assert [(e.line, e.column) for e in report.errors] == [
        (12, "phone"),
        (502, "email"),
        (1000, "birthday"),
    ]
    assert Member.objects.count() == 0


def test_a_file_with_errors_writes_nothing_unless_valid_rows_are_asked_for(db):
    rows = ["A1,王小明,,,,", "A2,林小美,123,,,", "A3,陳大文,,,,"]

    report = run(csv_bytes(rows))

    assert not report.written
    assert Member.objects.count() == 0


def test_the_valid_rows_only_import_writes_them_and_returns_the_skipped_rows(db):
    rows = ["A1,王小明,,,,", "A2,林小美,123,,,", "A3,陳大文,,,,"]

    report = run(csv_bytes(rows), valid_only=True)

    assert sorted(Member.objects.values_list("external_id", flat=True)) == ["A1", "A3"]
    assert report.skipped_csv.splitlines() == [EN_HEADER.strip(), "A2,林小美,123,,,"]


def test_duplicate_external_ids_in_the_file_are_reported(db):
    report = run(csv_bytes(["A1,王小明,,,,", "A1,王小明二號,,,,"]), dry_run=True)

    assert [(e.line, e.column) for e in report.errors] == [(3, "external_id")]


def test_a_member_already_in_the_database_is_updated_not_duplicated(db):
    MemberFactory(external_id="A1", name="舊名字")

    run(csv_bytes(["A1,新名字,,,,"]))

    assert Member.objects.filter(external_id="A1").count() == 1
    assert Member.objects.get(external_id="A1").name == "新名字"


def test_unknown_tags_are_refused_unless_the_operator_allows_new_ones(db):
    TagFactory(name="VIP")

    refused = run(csv_bytes(["A1,王小明,,,,VIP、新標籤"]))
    allowed = run(csv_bytes(["A1,王小明,,,,VIP、新標籤"]), allow_new_tags=True)

    assert not refused.written
    assert refused.errors[0].column == "tags"
    assert allowed.written
    assert sorted(Member.objects.get().tags.values_list("name", flat=True)) == ["VIP", "新標籤"]


def test_imported_members_are_placed_in_their_tier_and_the_import_is_one_audit_entry(programme):
    report = run(csv_bytes(["A1,王小明,,,,企業客戶", "A2,林小美,,,,"]))

    assert report.created == 2
    groups = dict(Member.objects.values_list("external_id", "group__name"))
    assert groups == {"A1": "企業 VIP", "A2": "全館 VIP"}
    entry = AuditEntry.objects.get(action="member.import")
    assert entry.after == {
        "file": "members.csv",
        "rows": 2,
        "created": 2,
        "updated": 0,
        "skipped": 0,
    }


def test_the_command_checks_a_file_and_refuses_to_write_a_bad_one(db, tmp_path, capsys):
    path = tmp_path / "members.csv"
    path.write_bytes(csv_bytes(["A1,王小明,,,,", "A2,林小美,123,,,"]))

    call_command("import_members", str(path), "--dry-run")
    with pytest.raises(CommandError):
        call_command("import_members", str(path))

    out = capsys.readouterr().out
    assert "line 3, phone" in out
    assert Member.objects.count() == 0
