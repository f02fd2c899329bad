"""Import and export in the admin: buttons, permissions, the check-confirm flow, safe CSVs."""

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from imports.exports import escape
from imports.models import ImportJob
from membership.models import Member
from tests.factories import MemberFactory, OrderFactory, staff_with
from tests.importing import csv_bytes


@pytest.fixture
def client(client, django_capture_on_commit_callbacks):
    """An English-speaking client whose requests run their after-commit tasks (eager Celery)."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    original = client.request

    def request(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return original(**kwargs)

    client.request = request
    return client


def upload(client, rows, kind="members"):
    data = csv_bytes(rows)
    return client.post(
        reverse("admin:imports_upload", args=[kind]),
        {"file": SimpleUploadedFile("members.csv", data, "text/csv"), "encoding": ""},
    )


def streamed(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode("utf-8-sig")


def test_the_member_list_shows_import_and_export_only_to_those_allowed(db, client):
    client.force_login(staff_with("view_member"))
    plain = client.get(reverse("admin:membership_member_changelist")).content.decode()
    client.force_login(staff_with("view_member", "import_members", "export_members"))
    allowed = client.get(reverse("admin:membership_member_changelist")).content.decode()

    assert reverse("admin:imports_upload", args=["members"]) not in plain
    assert reverse("admin:imports_upload", args=["members"]) in allowed
    # One Export button (django-import-export's page, which also links the streamed CSV).
    assert reverse("admin:membership_member_export") not in plain
    assert reverse("admin:membership_member_export") in allowed


def test_uploading_without_the_import_permission_is_refused(db, client):
    client.force_login(staff_with("view_member", "add_member", "change_member"))

    response = upload(client, ["A1,王小明,,,,"])

    assert response.status_code == 403
    assert not ImportJob.objects.exists()


def test_an_upload_is_checked_and_its_bad_rows_shown_before_anything_is_written(db, client):
    client.force_login(staff_with("import_members"))

    response = upload(client, ["A1,王小明,,,,", "A2,林小美,123,,,"], kind="members")
    page = client.get(response.url).content.decode()

    assert "2 rows: 1 valid, 1 with errors" in page
    assert "not a Taiwanese mobile number" in page
    assert Member.objects.count() == 0


def test_skipping_bad_rows_needs_the_operator_to_say_so(db, client):
    client.force_login(staff_with("import_members"))
    job_url = upload(client, ["A1,王小明,,,,", "A2,林小美,123,,,"]).url
    job = ImportJob.objects.get()
    confirm = reverse("admin:imports_confirm", args=[job.pk])

    client.post(confirm, {"mode": "valid_only"})
    unticked = Member.objects.count()
    client.post(confirm, {"mode": "valid_only", "understood": "1"})

    assert unticked == 0
    assert list(Member.objects.values_list("external_id", flat=True)) == ["A1"]
    assert "1 created, 0 updated, 1 skipped" in client.get(job_url).content.decode()


def test_the_skipped_rows_download_as_a_csv(db, client):
    client.force_login(staff_with("import_members"))
    upload(client, ["A1,王小明,,,,", "A2,林小美,123,,,"])
    job = ImportJob.objects.get()

    body = streamed(client.get(reverse("admin:imports_skipped", args=[job.pk])))

    assert body.splitlines() == [
        "external_id,name,phone,email,birthday,tags,reason",
        "A2,林小美,123,,,,phone: not a Taiwanese mobile number (09xx-xxx-xxx)",
    ]


def test_after_the_import_the_page_shows_the_members_with_their_tiers(programme, client):
    client.force_login(staff_with("import_members"))
    job_url = upload(client, ["A1,王小明,,,,", "A2,林小美,,,,"]).url
    job = ImportJob.objects.get()

    client.post(reverse("admin:imports_confirm", args=[job.pk]), {"mode": "all"})
    page = client.get(job_url).content.decode()

    assert "2 created, 0 updated, 0 skipped" in page
    assert page.count("一般會員") == 2


def test_cells_a_spreadsheet_would_run_are_escaped():
    assert [escape(v) for v in ["=1+1", "+886", "-2", "@SUM(A1)", "\tx", "\rx", "王", 5]] == [
        "'=1+1",
        "'+886",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "王",
        "5",
    ]


def test_the_member_export_is_streamed_escaped_and_follows_the_list_filters(programme, client):
    MemberFactory(external_id="A1", name='=HYPERLINK("http://evil")', email="a@example.com")
    MemberFactory(external_id="B2", name="林小美")
    client.force_login(staff_with("view_member", "export_members"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hant"

    body = streamed(
        client.get(reverse("admin:imports_export", args=["members"]), {"q": "A1"})
    ).splitlines()

    assert body[0].startswith("會員編號,姓名,手機")
    assert len(body) == 2
    assert body[1].startswith('A1,"\'=HYPERLINK(""http://evil"")"')


def test_the_order_export_reads_back_as_an_order_file(programme, client):
    member = MemberFactory(external_id="A1")
    OrderFactory(
        member=member,
        external_id="S1",
        amount=1200,
        placed_at=timezone.make_aware(dt.datetime(2026, 3, 1, 14, 30)),
    )
    client.force_login(staff_with("view_order", "export_orders"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hant"

    body = streamed(client.get(reverse("admin:imports_export", args=["orders"]))).splitlines()

    assert body == [
        "訂單編號,會員編號,金額,訂購時間,通路,退款金額,狀態",
        f"S1,A1,1200,2026-03-01 14:30:00,{OrderFactory._meta.model.objects.get().channel},0,paid",
    ]


def test_exporting_needs_the_export_permission(db, client):
    client.force_login(staff_with("view_member"))

    assert client.get(reverse("admin:imports_export", args=["members"])).status_code == 403


def test_exporting_needs_the_view_permission_on_the_list_too(db, client):
    client.force_login(staff_with("export_members"))

    assert client.get(reverse("admin:imports_export", args=["members"])).status_code == 403


def test_a_check_that_stops_on_an_error_marks_the_import_failed(db, monkeypatch):
    import io

    from imports import services

    job = services.create_job(
        kind="members", file=io.BytesIO(csv_bytes(["A1,王小明,,,,"])), filename="m.csv", actor=None
    )
    monkeypatch.setattr(services, "_check_rows", lambda *a, **k: 1 / 0)

    with pytest.raises(ZeroDivisionError):
        services.check(job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
