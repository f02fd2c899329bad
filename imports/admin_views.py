"""The import pages in the admin: upload, the job (progress, problems, confirm), exports."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from config.replica import reads_from_replica
from membership.models import Member, Order

from . import exports, leases, services, tasks
from .forms import EncodingForm, UploadForm
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
        try:
            with transaction.atomic():
                job = services.create_job(
                    kind=kind,
                    file=upload,
                    filename=upload.name,
                    actor=request.user,
                    encoding=form.cleaned_data["encoding"],
                    allow_new_tags=form.cleaned_data.get("allow_new_tags", False),
                )
                tasks.dispatch_after_commit(job.pk)
        except ValidationError as exc:
            form.add_error("file", exc)
        else:
            return redirect("admin:imports_importjob_change", job.pk)
    spec = services.SPECS[kind]
    context = {
        **admin.site.each_context(request),
        "title": _("Import %(kind)s") % {"kind": ImportJob.Kind(kind).label.lower()},
        "form": form,
        "kind": kind,
        "changelist": CHANGELISTS[kind],
        "max_upload_mb": settings.IMPORT_MAX_UPLOAD_MB,
        "columns": [
            (spec.labels[key], key in spec.required, names) for key, names in spec.columns.items()
        ],
    }
    return TemplateResponse(request, "admin/imports/upload.html", context)


def revive(job: ImportJob) -> ImportJob:
    """A job whose worker's lease ran out is released and sent again when its page is seen,
    so it is never stuck, even where no beat runs the sweeper (the eager development site)."""
    if job.claimed_by and job.lease_until and job.lease_until < timezone.now():
        for job_id in leases.sweep(job_id=job.pk):
            tasks.dispatch(job_id)
        job.refresh_from_db()
    return job


def job_context(request, job: ImportJob) -> dict:
    problems = list(job.problems.all()[:PROBLEMS_SHOWN])
    titles = services.column_titles(job) if problems and job.status != job.Status.FAILED else {}
    for problem in problems:
        problem.title = titles.get(problem.column, problem.column)
    encoding_form, decoded, read_as = None, [], ""
    if job.status == ImportJob.Status.ENCODING:
        chosen = request.GET.get("encoding", job.encoding)
        encoding_form = EncodingForm(initial={"encoding": job.encoding})
        if EncodingForm({"encoding": chosen}).is_valid():
            encoding_form = EncodingForm(initial={"encoding": chosen})
            decoded = services.encoding_sample(job, chosen)
            read_as = chosen
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
        "encoding_form": encoding_form,
        "decoded": decoded,
        "read_as": read_as,
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
        with transaction.atomic():
            services.confirm(
                job.pk,
                actor=request.user,
                valid_only=valid_only,
                notify=bool(request.POST.get("notify")),
            )
            tasks.dispatch_after_commit(job.pk)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("admin:imports_importjob_change", job.pk)


@require_POST
def encoding_view(request, job_id: int):
    """The operator confirms (or changes) a guessed encoding; the check then starts."""
    job = get_object_or_404(ImportJob, pk=job_id)
    if not services.can_import(request.user, job.kind):
        raise PermissionDenied
    form = EncodingForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose one of the encodings offered."))
        return redirect("admin:imports_importjob_change", job.pk)
    try:
        with transaction.atomic():
            services.set_encoding(
                job.pk, encoding=form.cleaned_data["encoding"], actor=request.user
            )
            tasks.dispatch_after_commit(job.pk)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("admin:imports_importjob_change", job.pk)


@require_POST
def discard_view(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)
    if not services.can_import(request.user, job.kind):
        raise PermissionDenied
    try:
        services.discard(job.pk)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("admin:imports_importjob_change", job.pk)
    messages.info(request, _("The file was discarded; nothing was written."))
    return redirect(CHANGELISTS[job.kind])


def skipped_view(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)
    if not services.can_import(request.user, job.kind) or not job.file:
        raise PermissionDenied
    rows = services.skipped_rows(job)
    header = next(rows, [])
    return _csv_response(exports.csv_lines(header, rows), f"skipped-{job.pk}.csv")


@reads_from_replica
def export_view(request, kind: str):
    """The changelist's rows, with its filters and search, streamed as CSV (from the
    replica when there is one: config/replica.py)."""
    models = {ImportJob.Kind.MEMBERS: Member, ImportJob.Kind.ORDERS: Order}
    if kind not in models or not request.user.has_perm(f"imports.export_{kind}"):
        raise PermissionDenied
    model_admin = admin.site.get_model_admin(models[kind])
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
