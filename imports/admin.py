from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _

from . import admin_views, services
from .models import ImportJob

IMPORT_PERMISSIONS = [spec.permission for spec in services.SPECS.values()]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Every upload, with who did it and what came of it; the page of one is its job page."""

    list_display = [
        "filename",
        "kind",
        "status",
        "total_rows",
        "error_rows",
        "created",
        "updated",
        "skipped",
        "created_by",
        "created_at",
        "attempts",
    ]
    list_filter = ["kind", "status"]
    list_select_related = ["created_by"]

    def _may_import(self, request) -> bool:
        return any(request.user.has_perm(p) for p in IMPORT_PERMISSIONS)

    def has_module_permission(self, request) -> bool:
        return super().has_module_permission(request) or self._may_import(request)

    def has_view_permission(self, request, obj=None) -> bool:
        if obj is not None and not services.can_import(request.user, obj.kind):
            return super().has_view_permission(request, obj)
        return super().has_view_permission(request, obj) or self._may_import(request)

    def has_add_permission(self, request) -> bool:
        return False  # uploads start from the member and order lists

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("new/<str:kind>/", view(admin_views.upload_view), name="imports_upload"),
            path("<int:job_id>/confirm/", view(admin_views.confirm_view), name="imports_confirm"),
            path("<int:job_id>/discard/", view(admin_views.discard_view), name="imports_discard"),
            path(
                "<int:job_id>/encoding/", view(admin_views.encoding_view), name="imports_encoding"
            ),
            path("<int:job_id>/skipped/", view(admin_views.skipped_view), name="imports_skipped"),
            path("export/<str:kind>/", view(admin_views.export_view), name="imports_export"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, object_id)
        if job is None or not self.has_view_permission(request, job):
            return super().change_view(request, object_id, form_url, extra_context)
        job = admin_views.revive(job)
        context = {
            **self.admin_site.each_context(request),
            **admin_views.job_context(request, job),
            "opts": self.model._meta,
            "title": _("Import: %(file)s") % {"file": job.filename},
        }
        return TemplateResponse(request, "admin/imports/job.html", context)
