"""The import pages in the admin: upload, the job (progress, problems, confirm), exports."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from membership.models import Member, Order

from . import exports, services, tasks
from .forms import UploadForm
from .models import ImportJob, StagedMember

PROBLEMS_SHOWN = 200
CHANGELISTS = {
    ImportJob.Kind.MEMBERS: "admin:membership_member_changelist",
    ImportJob.Kind.ORDERS: "admin:membership_order_changelist",
}


def upload_view(request, kind: str):
    if kind not in services.SPECS:
        raise PermissionDenied
    if not services.can_import(request.user, kind):
        raise PermissionDenied
    form = UploadForm(request.POST or None, request.FILES or None, kind=kind)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        job = services.create_job(
            kind=kind,
            file=upload,
            filename=upload.name,
            actor=request.user,
            encoding=form.cleaned_data["encoding"],
            allow_new_tags=form.cleaned_data.get("allow_new_tags", False),
        )
        transaction.on_commit(lambda: tasks.check_import.delay(job.pk))
        return redirect("admin:imports_importjob_change", job.pk)
    context = {
        **admin.site.each_context(request),
        "title": _("Import %(kind)s") % {"kind": ImportJob.Kind(kind).label.lower()},
        "form": form,
        "kind": kind,
        "changelist": CHANGELISTS[kind],
        "columns": services.SPECS[kind].columns,
        "required": services.SPECS[kind].required,
    }
    return TemplateResponse(request, "admin/imports/upload.html", context)


def job_context(request, job: ImportJob) -> dict:
    problems = list(job.problems.all()[:PROBLEMS_SHOWN])
    titles = services.column_titles(job) if problems and job.status != job.Status.FAILED else {}
    for problem in problems:
        problem.title = titles.get(problem.column, problem.column)
    sample = []
    if job.status == ImportJob.Status.DONE and job.kind == ImportJob.Kind.MEMBERS:
        refs = StagedMember.objects.filter(job=job).order_by("line").values("external_id")[:20]
        sample = Member.objects.filter(external_id__in=refs).select_related("group", "tier")
    return {
        "job": job,
        "problems": problems,
        "more_problems": job.problems.count() > PROBLEMS_SHOWN if problems else False,
        "sample": sample,
        "changelist": CHANGELISTS[job.kind],
        "can_write": services.can_import(request.user, job.kind),
    }


@require_POST
def confirm_view(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)
    if not services.can_import(request.user, job.kind):
        raise PermissionDenied
    valid_only = request.POST.get("mode") == "valid_only"
    if valid_only and not request.POST.get("understood"):
        messages.error(request, _("Tick the box to say the rows with errors will be skipped."))
        return redirect("admin:imports_importjob_change", job.pk)
    try:
        services.confirm(job.pk, actor=request.user, valid_only=valid_only)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        transaction.on_commit(lambda: tasks.write_import.delay(job.pk))
    return redirect("admin:imports_importjob_change", job.pk)


@require_POST
def discard_view(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)
    if not services.can_import(request.user, job.kind):
        raise PermissionDenied
    services.discard(job.pk)
    messages.info(request, _("The file was discarded; nothing was written."))
    return redirect(CHANGELISTS[job.kind])


def skipped_view(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)
    if not services.can_import(request.user, job.kind) or not job.file:
        raise PermissionDenied
    rows = services.skipped_rows(job)
    header = next(rows, [])
    return _csv_response(exports.csv_lines(header, rows), f"skipped-{job.pk}.csv")


def export_view(request, kind: str):
    """The changelist's rows, with its filters and search, streamed as CSV."""
    models = {ImportJob.Kind.MEMBERS: Member, ImportJob.Kind.ORDERS: Order}
    if kind not in models or not request.user.has_perm(f"imports.export_{kind}"):
        raise PermissionDenied
    model_admin = admin.site._registry[models[kind]]
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    queryset = model_admin.get_changelist_instance(request).get_queryset(request)
    if kind == ImportJob.Kind.MEMBERS:
        header, rows = exports.header(exports.MEMBER_COLUMNS), exports.member_rows(queryset)
    else:
        header, rows = exports.header(exports.ORDER_COLUMNS), exports.order_rows(queryset)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return _csv_response(exports.csv_lines(header, rows), f"{kind}-{stamp}.csv")


def _csv_response(lines, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
