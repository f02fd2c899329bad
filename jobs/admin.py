"""Batch jobs, read-only: what ran, how far it got, how long it took."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from membership.admin.common import ReadOnlyAdmin, ReadOnlyInline

from .models import Job, JobChunk


class JobChunkInline(ReadOnlyInline):
    model = JobChunk
    fields = ["step", "id_from", "id_to", "done_at", "attempts", "result", "error"]
    readonly_fields = fields


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = [
        "__str__",
        "kind",
        "status",
        "progress",
        "started_at",
        "finished_at",
        "duration",
    ]
    list_filter = ["kind", "status", "dispatched"]
    date_hierarchy = "started_at"
    fields = [
        "kind",
        "status",
        "progress",
        "dispatched",
        "started_at",
        "finished_at",
        "duration",
        "step",
        "result",
        "error",
        "params",
    ]
    readonly_fields = fields
    inlines = [JobChunkInline]

    @admin.display(description=_("progress"))
    def progress(self, job: Job) -> str:
        return _("%(done)s of %(total)s chunks") % {
            "done": job.chunks_done,
            "total": job.chunks_total,
        }

    @admin.display(description=_("duration"))
    def duration(self, job: Job) -> str:
        if job.finished_at is None:
            return "—"
        seconds = (job.finished_at - job.started_at).total_seconds()
        return _("%(seconds).1f s") % {"seconds": seconds}
