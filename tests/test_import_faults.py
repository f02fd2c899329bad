"""Imports under hostile input and faults, through the admin pages as the operator uses them.

Every bad cell is a row problem naming line, column, value and reason; nothing is cut,
guessed or converted at any cost; a job is never stuck, and nothing reports an error
after its commit. The real-worker faults (a killed worker, a dropped connection, the
broker back) are in test_celery_worker.py.
"""

import contextlib
import datetime as dt
import io
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from config.celery import app
from imports import leases, services, tasks
from imports.models import ImportJob, Problem, StagedMember
from membership.models import GiftIssue, Member, Order, TierHistory
from tests.factories import MemberFactory, staff_with
from tests.importing import check
from tests.test_celery_worker import _use_broker

MEMBERS = "external_id,name,phone,email,birthday,opening_spend\n"
ORDERS = "order_id,member,amount,placed_at,channel\n"
CLOSED_BROKER = "redis://127.0.0.1:6390/0"  # nothing listens there


@pytest.fixture
def client(client, django_capture_on_commit_callbacks):
    """An English-speaking client whose requests run their after-commit work."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    original = client.request

    def request(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return original(**kwargs)

    client.request = request
    return client


@pytest.fixture
def operator(client):
    user = staff_with("import_members", "import_orders", "view_member", "view_order")
    client.force_login(user)
    return user


def upload(client, data: bytes, kind="members", name="file.csv", **fields):
    return client.post(
        reverse("admin:imports_upload", args=[kind]),
        {"file": SimpleUploadedFile(name, data, "text/csv"), "encoding": "", **fields},
    )


def job_page(client, job) -> str:
    return client.get(reverse("admin:imports_importjob_change", args=[job.pk])).content.decode()


def problems(job) -> list[tuple]:
    return list(Problem.objects.filter(job=job).values_list("line", "column", "value", "message"))


def confirm(client, job, **fields):
    return client.post(reverse("admin:imports_confirm", args=[job.pk]), {"mode": "all", **fields})


# --- every cell checked before it is used ---------------------------------------------------


def test_a_nul_byte_in_a_name_is_a_row_problem_showing_the_value(db, client, operator):
    upload(client, (MEMBERS + "A1,王\x00小明,,,,\n").encode())

    job = ImportJob.objects.get()
    page = job_page(client, job)

    assert problems(job) == [(2, "name", "王\\x00小明", "contains a control character (\\x00)")]
    assert "<code>王\\x00小明</code>" in page
    assert job.status == ImportJob.Status.CHECKED
    assert not Member.objects.exists()


def test_an_email_longer_than_its_column_is_refused_never_cut(db, client, operator):
    email = "a" * 290 + "@example.com"  # 302 characters: Django's validator allows 320

    upload(client, (MEMBERS + f"A1,王小明,,{email},,\n").encode())

    (line, column, value, message) = problems(ImportJob.objects.get())[0]
    assert (line, column, message) == (2, "email", "longer than 254 characters (302)")
    assert value.endswith("…(302 characters)")


def test_an_order_member_id_over_64_characters_is_a_row_problem(db, client, operator):
    member_id = "M" * 65

    upload(client, (ORDERS + f"O1,{member_id},100,2024-01-05,web\n").encode(), kind="orders")

    assert [p[1:] for p in problems(ImportJob.objects.get())][0][::2] == (
        "member",
        "longer than 64 characters (65)",
    )


def test_a_channel_over_30_characters_is_refused_not_truncated(db, client, operator):
    MemberFactory(external_id="M1")
    channel = "c" * 31

    upload(client, (ORDERS + f"O1,M1,100,2024-01-05,{channel}\n").encode(), kind="orders")

    assert problems(ImportJob.objects.get()) == [
        (2, "channel", channel, "longer than 30 characters (31)")
    ]


def test_an_exponent_of_a_million_costs_no_time_and_is_a_row_problem(db, client, operator):
    started = time.perf_counter()

    upload(client, (MEMBERS + "A1,王小明,,,,1e1000000\n").encode())

    assert time.perf_counter() - started < 2
    assert problems(ImportJob.objects.get()) == [
        (2, "opening_spend", "1e1000000", "not an amount in NT$ (1,200 or 1200)")
    ]


@pytest.mark.parametrize(
    "value", ["Infinity", "-Infinity", "NaN", "sNaN", "inf", "1E5", "１２００"]
)
def test_numbers_that_are_not_plain_digits_are_refused(db, operator, value, english):
    job = check((MEMBERS + f"A1,王小明,,,,{value}\n").encode())

    assert [p[1:3] for p in problems(job)] == [("opening_spend", value)]


def test_a_number_over_two_to_the_63_in_csv_is_a_row_problem(db, english):
    job = check((MEMBERS + f"A1,王小明,,,,{2**63}\n").encode())

    assert problems(job) == [
        (2, "opening_spend", str(2**63), "more than 9,223,372,036,854,775,807")
    ]


def test_a_number_over_two_to_the_63_in_xlsx_is_a_row_problem(db, english):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["external_id", "name", "opening_points"])
    book.active.append(["A1", "王小明", 2**63])
    book.active.append(["A2", "林小美", 1e20])
    data = io.BytesIO()
    book.save(data)

    job = check(data.getvalue(), filename="members.xlsx")

    assert [(p[0], p[1], p[3]) for p in problems(job)] == [
        (2, "opening_points", "more than 9,223,372,036,854,775,807"),
        (3, "opening_points", "more than 9,223,372,036,854,775,807"),
    ]


def test_full_width_phone_digits_are_normalised(db, english):
    job = check((MEMBERS + "A1,王小明,０９１２－３４５－６７８,,,\n").encode())

    assert problems(job) == []
    assert StagedMember.objects.get(job=job).phone == "0912345678"


def test_arabic_indic_phone_digits_are_refused(db, english):
    job = check((MEMBERS + "A1,王小明,٠٩١٢٣٤٥٦٧٨,,,\n").encode())

    assert [p[1] for p in problems(job)] == ["phone"]


def test_a_birthday_in_the_future_is_refused(db, english):
    tomorrow = timezone.localdate() + dt.timedelta(days=1)

    job = check((MEMBERS + f"A1,王小明,,,{tomorrow.isoformat()},\n").encode())

    assert problems(job) == [(2, "birthday", tomorrow.isoformat(), "in the future")]


def test_a_join_date_in_the_future_is_refused(db, english):
    job = check(("external_id,name,joined_at\n" + "A1,王小明,2099-01-01\n").encode())

    assert problems(job) == [(2, "joined_at", "2099-01-01", "in the future")]


def test_an_order_dated_2099_is_refused(db, english):
    MemberFactory(external_id="M1")

    job = check((ORDERS + "O1,M1,100,2099-01-05 10:00,web\n").encode(), kind="orders")

    assert problems(job) == [(2, "placed_at", "2099-01-05 10:00", "in the future")]


def test_an_order_a_minute_ahead_of_the_clock_is_accepted(db, english):
    MemberFactory(external_id="M1")
    soon = timezone.localtime() + dt.timedelta(minutes=1)

    job = check((ORDERS + f"O1,M1,100,{soon:%Y-%m-%d %H:%M},web\n").encode(), kind="orders")

    assert problems(job) == []


def test_an_unterminated_quote_is_a_file_error_not_rows_swallowed_into_a_name(db, client, operator):
    data = (MEMBERS + 'A1,"王小明,,,,\nA2,林小美,,,,\nA3,陳大文,,,,\n').encode()

    upload(client, data)

    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED
    assert "the quoted cell that starts on line 2 is never closed" in job_page(client, job)
    assert not StagedMember.objects.exists()


# --- the encoding guessed, shown, confirmed -------------------------------------------------


def test_a_latin1_file_waits_for_the_operator_with_the_guess_and_a_sample(db, client, operator):
    upload(client, (MEMBERS + "A1,Renée,,,,\n").encode("latin-1"))

    job = ImportJob.objects.get()
    page = job_page(client, job)

    assert job.status == ImportJob.Status.ENCODING
    assert "it reads as cp950" in page
    assert "Ren嶪" in page
    assert not StagedMember.objects.exists()


def test_the_operator_previews_another_encoding_and_the_sample_reads_right(db, client, operator):
    upload(client, (MEMBERS + "A1,Renée,,,,\n").encode("latin-1"))
    job = ImportJob.objects.get()

    url = reverse("admin:imports_importjob_change", args=[job.pk])
    page = client.get(url, {"encoding": "cp1252"}).content.decode()

    assert "Renée" in page
    assert '<option value="cp1252" selected>' in page


def test_confirming_the_encoding_checks_and_imports_the_name_as_written(db, client, operator):
    upload(client, (MEMBERS + "A1,Renée,,,,\n").encode("latin-1"))
    job = ImportJob.objects.get()

    client.post(reverse("admin:imports_encoding", args=[job.pk]), {"encoding": "cp1252"})
    confirm(client, job)

    assert Member.objects.get().name == "Renée"


def test_the_command_refuses_a_guessed_encoding_and_shows_the_sample(db, tmp_path):
    path = tmp_path / "members.csv"
    path.write_bytes((MEMBERS + "A1,Renée,,,,\n").encode("latin-1"))

    with pytest.raises(CommandError, match="Ren嶪") as refused:
        call_command("import_members", str(path), stdout=io.StringIO())

    assert "--encoding" in str(refused.value)
    assert not Member.objects.exists()


# --- the upload cap ------------------------------------------------------------------------


def test_a_file_over_the_upload_cap_is_refused_with_its_size(db, client, operator, settings):
    settings.IMPORT_MAX_UPLOAD_MB = 1
    data = (MEMBERS + "A1,王小明,,,,\n" * 100_000).encode()  # 1.4 MB

    response = upload(client, data)

    assert response.status_code == 200
    assert "an import takes at most 1 MB" in response.content.decode()
    assert not ImportJob.objects.exists()


# --- imports don't spam --------------------------------------------------------------------

SPENDERS = MEMBERS + "A1,王小明,,a1@example.com,,35000\nA2,林小美,,a2@example.com,,12000\n"


def test_an_import_sends_no_email_and_issues_no_gift_unless_asked(
    programme, client, operator, mailoutbox
):
    upload(client, SPENDERS.encode())
    job = ImportJob.objects.get()

    confirm(client, job)
    page = job_page(client, job)

    assert Member.objects.get(external_id="A1").tier.name == "金卡"
    assert mailoutbox == []
    assert not GiftIssue.objects.exists()
    assert TierHistory.objects.count() == 2  # the history is kept, only marked as not sent
    assert not TierHistory.objects.filter(notified_at__isnull=True).exists()
    assert "No e-mails were sent and no upgrade gifts issued" in page


def test_ticking_notify_emails_the_members_and_issues_their_gifts(
    programme, client, operator, mailoutbox
):
    upload(client, SPENDERS.encode())
    job = ImportJob.objects.get()

    confirm(client, job, notify="1")
    page = job_page(client, job)

    assert sorted(m.to[0] for m in mailoutbox) == ["a1@example.com", "a2@example.com"]
    assert sorted(GiftIssue.objects.values_list("gift", flat=True)) == ["金卡迎新禮", "銀卡迎新禮"]
    assert "Members were notified: 2 e-mails queued, 2 upgrade gifts issued." in page


def test_the_command_notifies_only_with_notify(
    programme, tmp_path, mailoutbox, django_capture_on_commit_callbacks
):
    path = tmp_path / "members.csv"
    path.write_text(SPENDERS, encoding="utf-8")
    out = io.StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_members", str(path), stdout=out)
    quiet = (len(mailoutbox), GiftIssue.objects.count())
    path.write_text(MEMBERS + "A3,陳大文,,a3@example.com,,40000\n", encoding="utf-8")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_members", str(path), "--notify", stdout=out)

    assert quiet == (0, 0)
    assert [m.to[0] for m in mailoutbox] == ["a3@example.com"]
    assert list(GiftIssue.objects.values_list("member__external_id", flat=True)) == ["A3"]
    assert "1 e-mails queued, 1 gifts issued" in out.getvalue()


# --- discard from every state but written --------------------------------------------------


@pytest.mark.parametrize(
    "status", ["encoding", "queued", "checking", "checked", "writing", "failed"]
)
def test_every_job_page_but_a_written_one_discards(db, client, operator, status):
    job = services.create_job(
        kind="members", file=io.BytesIO(b"external_id,name\nA1,x\n"), filename="m.csv", actor=None
    )
    ImportJob.objects.filter(pk=job.pk).update(status=status, claimed_by="a worker")

    page = job_page(client, job)
    client.post(reverse("admin:imports_discard", args=[job.pk]))

    job.refresh_from_db()
    assert 'id="import-discard"' in page
    assert (job.status, job.claimed_by, job.file.name) == ("discarded", "", "")


def test_a_written_job_cannot_be_discarded(db, client, operator):
    upload(client, (MEMBERS + "A1,王小明,,,,\n").encode())
    job = ImportJob.objects.get()
    confirm(client, job)

    page = job_page(client, job)
    response = client.post(reverse("admin:imports_discard", args=[job.pk]), follow=True)

    assert 'id="import-discard"' not in page
    assert "already imported" in response.content.decode()
    assert ImportJob.objects.get().status == ImportJob.Status.DONE


# --- leases and the sweeper ----------------------------------------------------------------


def claimed_long_ago(job, status, attempts=1):
    ImportJob.objects.filter(pk=job.pk).update(
        status=status,
        claimed_by="host/123/deadbeef",
        lease_until=timezone.now() - dt.timedelta(seconds=1),
        attempts=attempts,
    )


def test_a_check_whose_worker_stopped_is_claimed_again_by_the_sweeper_and_finishes(db, english):
    job = services.create_job(
        kind="members",
        file=io.BytesIO((MEMBERS + "A1,王小明,,,,\n").encode()),
        filename="m.csv",
        actor=None,
    )
    claimed_long_ago(job, ImportJob.Status.CHECKING)

    tasks.sweep_import_jobs()

    job.refresh_from_db()
    assert (job.status, job.attempts, job.valid_rows) == ("checked", 2, 1)
    assert StagedMember.objects.filter(job=job).count() == 1


def test_a_write_whose_worker_stopped_is_written_once_by_the_sweeper(db, english):
    job = check((MEMBERS + "A1,王小明,,,,500\n").encode())
    services.confirm(job.pk, actor=None, valid_only=False)
    claimed_long_ago(job, ImportJob.Status.WRITING)

    tasks.sweep_import_jobs()
    tasks.sweep_import_jobs()

    job.refresh_from_db()
    assert (job.status, job.created) == ("done", 1)
    assert Order.objects.filter(external_id="opening:A1").count() == 1


def test_a_job_whose_lease_ran_out_on_its_last_attempt_is_marked_failed(db, english, settings):
    settings.IMPORT_MAX_ATTEMPTS = 3
    job = check((MEMBERS + "A1,王小明,,,,\n").encode())
    services.confirm(job.pk, actor=None, valid_only=False)
    claimed_long_ago(job, ImportJob.Status.WRITING, attempts=3)

    tasks.sweep_import_jobs()

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.message.startswith("Stopped after 3 attempts")
    assert not Member.objects.exists()


def test_a_live_lease_is_left_to_its_worker(db, english):
    job = services.create_job(
        kind="members", file=io.BytesIO(b"external_id,name\nA1,x\n"), filename="m.csv", actor=None
    )
    ImportJob.objects.filter(pk=job.pk).update(
        status="checking", claimed_by="alive", lease_until=timezone.now() + dt.timedelta(minutes=1)
    )

    tasks.sweep_import_jobs()

    job.refresh_from_db()
    assert (job.status, job.claimed_by) == ("checking", "alive")


def test_a_job_page_says_an_attempt_stopped_and_will_be_tried_again(db, client, operator):
    job = services.create_job(
        kind="members", file=io.BytesIO(b"external_id,name\nA1,x\n"), filename="m.csv", actor=None
    )
    claimed_long_ago(job, ImportJob.Status.CHECKING)

    waiting = leases.sweep()

    assert waiting == [job.pk]
    assert "Attempt 1 of 3 stopped" in job_page(client, job)


# --- broker away: the job row is the record; nothing fails after the commit --------------


class broker:
    """Celery pointed at ``url`` with real sending (not eager) for the block."""

    def __init__(self, url: str):
        self.url = url

    def __enter__(self):
        self.saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager")}
        _use_broker(broker_url=self.url, task_always_eager=False)

    def __exit__(self, *exc):
        _use_broker(**self.saved)


def test_an_upload_with_the_broker_away_succeeds_and_the_job_waits_queued(db, client, operator):
    with broker(CLOSED_BROKER):
        response = upload(client, (MEMBERS + "A1,王小明,,,,\n").encode())
        page = client.get(response.url)

    job = ImportJob.objects.get()
    assert (response.status_code, page.status_code) == (302, 200)
    assert (job.status, job.dispatched_at) == ("queued", None)


def test_the_sweeper_checks_an_upload_made_while_the_broker_was_away(db, client, operator):
    with broker(CLOSED_BROKER):
        upload(client, (MEMBERS + "A1,王小明,,,,\n").encode())

    tasks.sweep_import_jobs()  # the broker is back (eager here; a real worker in
    # test_celery_worker.py)

    assert ImportJob.objects.get().status == ImportJob.Status.CHECKED


def test_a_confirm_with_the_broker_away_succeeds_and_the_sweeper_writes_it(db, client, operator):
    upload(client, (MEMBERS + "A1,王小明,,,,\n").encode())
    job = ImportJob.objects.get()

    with broker(CLOSED_BROKER):
        response = confirm(client, job)
        waiting = ImportJob.objects.get()
    tasks.sweep_import_jobs()

    assert response.status_code == 302
    assert (waiting.status, waiting.claimed_by, waiting.dispatched_at) == ("writing", "", None)
    assert ImportJob.objects.get().status == ImportJob.Status.DONE
    assert Member.objects.count() == 1


# --- the upload page in the operator's language --------------------------------------------


def test_the_upload_page_names_its_columns_in_zh_hant(db, client, operator):
    url = reverse("admin:imports_upload", args=["members"])

    page = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()

    assert "<td>期初消費（NT$）</td>" in page
    assert "<td>外部編號 *</td>" in page
    assert "<code>opening_spend</code>" not in page
    assert "檔案上限 100 MB" in page


def test_a_job_page_whose_lease_ran_out_is_taken_up_again_without_beat(db, client, operator):
    job = services.create_job(
        kind="members",
        file=io.BytesIO((MEMBERS + "A1,王小明,,,,\n").encode()),
        filename="m.csv",
        actor=None,
    )
    claimed_long_ago(job, ImportJob.Status.CHECKING)  # e.g. a web timeout in eager mode

    page = job_page(client, job)

    assert ImportJob.objects.get().status == ImportJob.Status.CHECKED
    assert "1 rows: 1 valid" in page


@pytest.mark.parametrize("cell", ["1e1000000", "9" * 30, "Infinity", "1,234,567.000"])
def test_reading_an_amount_costs_microseconds_whatever_the_cell(cell):
    from imports.reading import parse_amount

    started = time.perf_counter()
    for _ in range(1000):
        with contextlib.suppress(ValueError):
            parse_amount(cell)
    per_cell = (time.perf_counter() - started) / 1000

    assert per_cell < 0.0005  # half a millisecond, with room for a busy machine
