"""Export of admin lists and import of the programme's configuration (django-import-export).

Every list an operator takes to Excel gets an Export button (``ListExportMixin``): the
list as filtered and searched, as CSV (UTF-8 with a BOM, so Excel reads the Chinese),
XLSX or JSON. Text cells that a spreadsheet would run as a formula are escaped the way
``imports.exports`` escapes its streamed CSV. Export needs the model's "export"
permission (``IMPORT_EXPORT_EXPORT_PERMISSION_CODE``); those permissions are created
here after migrate, for every model whose admin exports, so no model needs a migration.

The configuration admins (``ConfigImportExportMixin``) also import, through
import-export's preview-and-confirm screens; the resources there look rows up by name
or code, never by database id, so a programme moves from a test site to the live one.
"""

from __future__ import annotations

import tablib
from django.contrib import messages
from django.contrib.auth import get_permission_codename
from django.db.models.signals import post_migrate
from django.dispatch import receiver
from django.template.loader import select_template
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from import_export.admin import ExportMixin, ImportExportMixin
from import_export.formats import base_formats
from import_export.forms import ExportForm
from import_export.results import RowResult

from imports.exports import escape
from membership.services.configuration import programme_warnings

from .common import registered_admins


def escape_formulae(dataset: tablib.Dataset) -> tablib.Dataset:
    """A copy whose text cells cannot run as formulas; numbers stay numbers."""
    escaped = tablib.Dataset(headers=dataset.headers)
    for row in dataset:
        escaped.append([escape(cell) if isinstance(cell, str) else cell for cell in row])
    return escaped


class ExcelCSV(base_formats.CSV):
    """CSV in UTF-8 with a BOM first: Excel on Windows reads the Chinese right."""

    def export_data(self, dataset, **kwargs):
        return "\ufeff" + super().export_data(escape_formulae(dataset), **kwargs)


class SafeXLSX(base_formats.XLSX):
    def export_data(self, dataset, **kwargs):
        return super().export_data(escape_formulae(dataset), **kwargs)


# JSON is read by programs, not spreadsheets: its values are left as they are.
FORMATS = [ExcelCSV, SafeXLSX, base_formats.JSON]


class ListExportMixin(ExportMixin):
    """An Export button on the list: what the list shows, filtered, in CSV, XLSX or JSON.

    ``export_permission`` names the permission export needs when it is not the model's
    own ``export_<model>`` (members and orders keep the imports app's permissions).
    """

    export_form_class = ExportForm
    export_template_name = "admin/exports/export.html"
    export_permission: str | None = None
    # The imports app's kind ("members"): its streamed, re-importable CSV of any length is
    # offered on the export page, and the list keeps its own template (Import, Export).
    streamed_export: str | None = None

    def init_change_list_template(self):
        super().init_change_list_template()
        if self.streamed_export:
            self.change_list_template = None

    def changelist_view(self, request, extra_context=None):
        if self.ie_base_change_list_template == "admin/change_list.html":
            # import-export's template names its base; keep a list's own override
            # (admin/<app>/<model>/change_list.html) under it, as Django would find it.
            opts = self.opts
            self.ie_base_change_list_template = select_template(
                [
                    f"admin/{opts.app_label}/{opts.model_name}/change_list.html",
                    f"admin/{opts.app_label}/change_list.html",
                    "admin/change_list.html",
                ]
            ).template.name
        return super().changelist_view(request, extra_context)

    @property
    def export_formats(self):
        return FORMATS

    def has_export_permission(self, request) -> bool:
        allowed = (
            request.user.has_perm(self.export_permission)
            if self.export_permission
            else super().has_export_permission(request)
        )
        return allowed and self.has_view_permission(request)

    def init_request_context_data(self, request, form):
        context = super().init_request_context_data(request, form)
        if self.streamed_export:
            query = f"?{request.GET.urlencode()}" if request.GET else ""
            context["streamed_export_url"] = (
                reverse("admin:imports_export", args=[self.streamed_export]) + query
            )
        return context

    def get_export_filename(self, request, queryset, file_format):
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        return f"{self.opts.model_name}-{stamp}.{file_format.get_extension()}"


class ConfigImportExportMixin(ImportExportMixin, ListExportMixin):
    """Export and import of configuration, previewed before anything is written.

    Import needs the permissions to add and to change the model: an import does both.
    """

    import_export_change_list_template = "admin/import_export/change_list_import_export.html"

    @property
    def import_formats(self):
        return FORMATS

    def has_import_permission(self, request) -> bool:
        return self.has_add_permission(request) and self.has_change_permission(request)

    def add_success_message(self, result, request):
        messages.success(
            request,
            _(
                "Import finished: %(new)d new and %(updated)d updated %(things)s; "
                "%(skipped)d unchanged."
            )
            % {
                "new": result.totals[RowResult.IMPORT_TYPE_NEW],
                "updated": result.totals[RowResult.IMPORT_TYPE_UPDATE],
                "skipped": result.totals[RowResult.IMPORT_TYPE_SKIP],
                "things": self.opts.verbose_name_plural,
            },
        )
        for warning in programme_warnings():
            messages.warning(request, warning)

    def init_change_list_template(self):
        if isinstance(getattr(type(self), "change_list_template", None), property):
            # adminsortable2 chooses its own template; adminsortable2/<app>/<model>/
            # change_list.html adds the import and export buttons to it.
            self.ie_base_change_list_template = "admin/change_list.html"
            return
        super().init_change_list_template()


def export_permission_codename(opts) -> str:
    return get_permission_codename("export", opts)


@receiver(post_migrate)
def create_export_permissions(sender, using="default", **kwargs):
    """``<app>.export_<model>`` for every model of the migrated app whose admin exports."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    for model, model_admin in registered_admins(sender):
        if not isinstance(model_admin, ExportMixin):
            continue
        if getattr(model_admin, "export_permission", None):
            continue
        content_type = ContentType.objects.db_manager(using).get_for_model(
            model, for_concrete_model=False
        )
        Permission.objects.db_manager(using).get_or_create(
            content_type=content_type,
            codename=export_permission_codename(model._meta),
            defaults={"name": f"Can export {model._meta.verbose_name_raw}"[:255]},
        )
