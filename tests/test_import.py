"""Member import: encodings, headers, normalisation, bad rows, all or nothing, the command."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from imports import services
from imports.models import ImportJob
from imports.reading import normalise_phone, parse_date
from membership.models import AuditEntry, Member
from tests.factories import MemberFactory, TagFactory, staff_with
from tests.importing import check, csv_bytes, importer, run

pytestmark = pytest.mark.usefixtures("english")

ZH_HEADER = "會員編號,姓名,手機,電子郵件,生日,標籤\n"
EN_HEADER = "external_id,name,phone,email,birthday,tags\n"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("0912-345-678", "0912345678"),
        ("+886 912 345 678", "0912345678"),
        ("886912345678", "0912345678"),
        ("912345678", "0912345678"),
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


# CP950 can only be guessed (almost any bytes decode), so the operator names it.
@pytest.mark.parametrize(
    ("encoding", "chosen"), [("utf-8", ""), ("utf-8-sig", ""), ("cp950", "cp950")]
)
def test_each_encoding_with_chinese_headers_imports_the_same_member(db, encoding, chosen):
    data = csv_bytes(["A1,王小明,0912-345-678,Amy@Example.COM,85/03/12,"], ZH_HEADER, encoding)

    job = run(data, encoding=chosen)

    member = Member.objects.get(external_id="A1")
    assert job.status == ImportJob.Status.DONE
    assert (member.name, member.phone, member.email, member.birthday) == (
        "王小明",
        "0912345678",
        "amy@example.com",
        dt.date(1996, 3, 12),
    )


def test_the_detected_encoding_is_shown_with_the_job(db):
    job = check(csv_bytes(["A1,王小明,,,,"], ZH_HEADER, "cp950"))

    assert job.encoding == "cp950"


def test_a_bom_never_leaks_into_the_first_column_name(db):
    job = check(csv_bytes(["A1,王小明,,,,"], EN_HEADER, "utf-8-sig"))

    assert list(job.problems.all()) == []
    assert job.valid_rows == 1


def test_a_missing_required_column_is_reported_on_line_one(db):
    job = check(csv_bytes(["王小明"], "name\n"))

    assert [(p.line, p.column) for p in job.problems.all()] == [(1, "external_id")]
    assert job.valid_rows == 0


def test_three_bad_rows_among_1000_are_listed_exactly_by_the_check_which_writes_nothing(db):
    rows = [f"M{i},會員{i},09{i:08d},m{i}@example.com,1990-01-01," for i in range(1000)]
    rows[10] = "M10,會員10,12345,m10@example.com,1990-01-01,"  # bad phone, line 12
    rows[500] = "M500,會員500,0900000500,not-an-email,1990-01-01,"  # bad e-mail, line 502
    rows[998] = "M998,會員998,0900000998,m998@example.com,85/13/40,"  # bad date, line 1000

    job = check(csv_bytes(rows))

    assert (job.total_rows, job.error_rows, job.valid_rows) == (1000, 3, 997)
    assert [(p.line, p.column) for p in job.problems.all()] == [
        (12, "phone"),
        (502, "email"),
        (1000, "birthday"),
    ]
    assert Member.objects.count() == 0


def test_progress_is_reported_while_a_file_is_checked(db, monkeypatch):
    monkeypatch.setattr(services, "CHUNK", 2)
    seen = []
    job = services.create_job(
        kind="members",
        file=__import__("io").BytesIO(csv_bytes([f"A{i},n{i},,,," for i in range(5)])),
        filename="m.csv",
        actor=None,
    )

    services.check(job.pk, progress=lambda j: seen.append((j.rows_done, j.total_rows)))

    assert seen == [(2, 5), (4, 5), (5, 5)]


def test_a_file_with_errors_is_refused_whole_unless_valid_rows_are_asked_for(db):
    job = check(csv_bytes(["A1,王小明,,,,", "A2,林小美,123,,,", "A3,陳大文,,,,"]))

    with pytest.raises(ValidationError, match="1 rows have errors: nothing is written"):
        services.confirm(job.pk, actor=importer(), valid_only=False)

    assert Member.objects.count() == 0


def test_the_valid_rows_only_import_writes_them_and_offers_the_skipped_rows(db, english):
    job = run(csv_bytes(["A1,王小明,,,,", "A2,林小美,123,,,", "A3,陳大文,,,,"]), valid_only=True)

    assert sorted(Member.objects.values_list("external_id", flat=True)) == ["A1", "A3"]
    assert (job.created, job.skipped) == (2, 1)
    assert list(services.skipped_rows(job)) == [
        [*EN_HEADER.strip().split(","), "reason"],
        ["A2", "林小美", "123", "", "", "", "phone: not a Taiwanese mobile number (09xx-xxx-xxx)"],
    ]


def test_every_row_of_a_duplicated_external_id_is_reported(db):
    job = check(csv_bytes(["A1,王小明,,,,", "A2,林小美,,,,", "A1,王小明二號,,,,"]))

    problems = [(p.line, p.column, p.message) for p in job.problems.all()]
    assert problems == [
        (2, "external_id", "A1 is also on line 4"),
        (4, "external_id", "A1 is also on line 2"),
    ]
    assert job.valid_rows == 1


def test_a_member_already_in_the_database_is_updated_not_duplicated(db):
    MemberFactory(external_id="A1", name="舊名字", phone="0911111111")

    job = run(csv_bytes(["A1,新名字,,,,"]))

    assert (job.created, job.updated, job.existing_rows) == (0, 1, 1)
    member = Member.objects.get(external_id="A1")
    assert (member.name, member.phone) == ("新名字", "0911111111")


def test_unknown_tags_are_refused_unless_the_operator_allows_new_ones(db):
    TagFactory(name="VIP")

    refused = check(csv_bytes(["A1,王小明,,,,VIP、新標籤"]))
    run(csv_bytes(["A1,王小明,,,,VIP、新標籤"]), allow_new_tags=True)

    assert [p.column for p in refused.problems.all()] == ["tags"]
    assert sorted(Member.objects.get().tags.values_list("name", flat=True)) == ["VIP", "新標籤"]


def test_imported_members_are_placed_in_their_tier_and_the_import_is_one_audit_entry(programme):
    run(csv_bytes(["A1,王小明,,,,企業客戶", "A2,林小美,,,,"]))

    groups = dict(Member.objects.values_list("external_id", "group__name"))
    assert groups == {"A1": "企業 VIP", "A2": "全館 VIP"}
    entry = AuditEntry.objects.get(action="member.import")
    assert entry.after == {
        "file": "members.csv",
        "rows": 2,
        "created": 2,
        "updated": 0,
        "skipped": 0,
        "notify": False,
        "emails_queued": 0,
        "gifts_issued": 0,
    }


def test_a_failure_while_writing_leaves_nothing_written(db, monkeypatch):
    job = check(csv_bytes(["A1,王小明,,,,", "A2,林小美,,,,"]))
    services.confirm(job.pk, actor=importer(), valid_only=False)

    def fail(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "recompute_members", fail)
    with pytest.raises(RuntimeError):
        services.write(job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert "Nothing was written" in job.message
    assert Member.objects.count() == 0


def test_confirming_twice_writes_once(db):
    job = check(csv_bytes(["A1,王小明,,,,"]))
    services.confirm(job.pk, actor=importer(), valid_only=False)
    services.confirm(job.pk, actor=importer(), valid_only=False)

    services.write(job.pk)
    services.write(job.pk)

    assert AuditEntry.objects.filter(action="member.import").count() == 1


def test_import_without_the_permission_is_refused(db):
    clerk = staff_with("view_member", "export_members")

    with pytest.raises(ValidationError, match="permission"):
        services.create_job(
            kind="members", file=__import__("io").BytesIO(b"x"), filename="m.csv", actor=clerk
        )


def test_an_unreadable_file_fails_with_a_message(db):
    job = check(b"PK\x03\x04 this is not really a spreadsheet", filename="members.xlsx")

    assert job.status == ImportJob.Status.FAILED
    assert "could not be read" in job.message


def test_the_command_checks_a_file_and_refuses_to_write_a_bad_one(db, tmp_path, capsys):
    path = tmp_path / "members.csv"
    path.write_bytes(csv_bytes(["A1,王小明,,,,", "A2,林小美,123,,,"]))

    call_command("import_members", str(path), "--dry-run")
    with pytest.raises(CommandError, match="nothing is written"):
        call_command("import_members", str(path))

    out = capsys.readouterr().out
    assert "line 3, phone" in out
    assert "2 / 2 rows" in out
    assert Member.objects.count() == 0


def test_the_command_writes_the_valid_rows_and_saves_the_skipped_ones(db, tmp_path):
    path = tmp_path / "members.csv"
    path.write_bytes(csv_bytes(["A1,王小明,,,,", "A2,林小美,123,,,"]))

    call_command("import_members", str(path), "--valid-only")

    assert list(Member.objects.values_list("external_id", flat=True)) == ["A1"]
    assert "A2,林小美,123" in (tmp_path / "members.skipped.csv").read_text(encoding="utf-8-sig")
