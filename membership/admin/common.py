"""Pieces shared by the membership admins."""

import json
from contextlib import contextmanager

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.forms.formsets import ManagementForm
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, gettext_lazy

from membership.templatetags.humanize_nt import discount, nt


class EstimatedCountPaginator(Paginator):
    """On PostgreSQL a long list is counted from the planner's estimate, never by COUNT(*).

    A full COUNT over a million members (or ten million orders) costs more than the
    page itself, and a filtered list was counted exactly — a second full scan a page.
    An unfiltered list reads the table's row estimate (pg_class.reltuples, kept by
    autovacuum's ANALYZE); a filtered or searched one asks the planner (EXPLAIN, no
    execution) how many rows its query returns. Only an estimate under
    ``EXACT_BELOW`` rows is counted exactly, which is then cheap. ``estimated`` tells
    the templates to say "about" (templates/admin/pagination.html).
    """

    EXACT_BELOW = 10_000
    # From this many rows skipped, a page finds its rows' ids first (see ``page``).
    IDS_FIRST_FROM = 1_000

    estimated = False

    def page(self, number):
        """Django's, except that a page far into a list first reads the ids of its rows
        alone, then those rows with what they show. Skipping 100,000 members (page 2,000)
        read every skipped row with its group and tier, 290 ms at a million members; their
        ids alone come from the primary key's index without the table, 32 ms."""
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        rows = self.object_list
        query = getattr(rows, "query", None)
        if bottom < self.IDS_FIRST_FROM or query is None or query.distinct or query.combinator:
            return self._get_page(rows[bottom:top], number, self)
        ids = list(rows.values_list("pk", flat=True)[bottom:top])
        return self._get_page(rows.filter(pk__in=ids), number, self)

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and connections[self.object_list.db].vendor == "postgresql":
            guess = _estimated_rows(self.object_list)
            if guess is not None and guess >= self.EXACT_BELOW:
                self.estimated = True
                return guess
        return super().count


def _estimated_rows(queryset) -> int | None:
    connection = connections[queryset.db]
    if not queryset.query.where:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                [queryset.model._meta.db_table],
            )
            row = cur.fetchone()
        return int(row[0]) if row and row[0] > 0 else None
    # Only the rows counted: no ordering, no joins for display (select_related).
    sql, params = queryset.order_by().select_related(None).values("pk").query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cur.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


@contextmanager
def custom_plans(using: str = "default"):
    """Statements planned for the values they carry, not prepared once for any value.

    The settings prepare a statement a connection repeats (psycopg's prepare_threshold),
    and after a few runs PostgreSQL may keep one generic plan for it. For a search or a
    filter that plan cannot know how rare the value is: for the member search it walks
    the primary key backwards filtering every row (0.8 s at a million members) instead
    of the trigram index (15 ms). Here the connection stops preparing for a while.
    """
    wrapper = connections[using]
    wrapper.ensure_connection()
    raw = wrapper.connection
    if wrapper.vendor != "postgresql" or not hasattr(raw, "prepare_threshold"):
        yield
        return
    before = raw.prepare_threshold
    raw.prepare_threshold = None
    try:
        yield
    finally:
        raw.prepare_threshold = before


class ListsPlannedPerValue:
    """A ModelAdmin mixin: the list's queries run with custom_plans(), through rendering
    (the page's rows are only read while the template renders)."""

    def changelist_view(self, request, extra_context=None):
        with custom_plans():
            response = super().changelist_view(request, extra_context)
            if hasattr(response, "render"):
                response.render()
        return response


class PlainActionCheckbox:
    """A ModelAdmin mixin: each row's action checkbox written as HTML, not rendered.

    Django renders it through a CheckboxInput widget and the form renderer's template,
    fifty times a page: more time than the page's queries on the long lists. The
    markup is Django's own (class, name, value, aria-label).
    """

    def action_checkbox(self, obj):
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            ACTION_CHECKBOX_NAME,
            obj.pk,
            format_html(gettext("Select this object for an action - {}"), str(obj)),
        )


class QuickChangeList(ChangeList):
    """Django's list page, with less work a row and the same page.

    Each row's link to its page: Django reverses the change URL for every row and, on a
    filtered or searched list, resolves that URL again through every admin URL to
    append the list's filters (so the row's page leads back to the same list): 50
    reversals and 50 resolutions a page, more time than the page's queries. Here the
    URL is reversed once with a placeholder and the filters are appended as Django
    would; the links are the same.

    The rows' columns: with ``list_columns`` on the ModelAdmin, the page's rows are
    read with those columns only (``QuerySet.only``), not every column of the row and
    of each related row (a member's nineteen, and an order's member's): half the time
    of reading and building fifty rows. The columns the list shows must be among them,
    or each row reads its missing ones (tests count the queries).
    """

    PLACEHOLDER = "__pk__"

    def __init__(self, request, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        # items_for_result appends preserved_filters by resolving each row's URL again;
        # url_for_result appends them itself, so none are left for it to append.
        self.row_filters, self.preserved_filters = self.preserved_filters, ""

    def get_results(self, request):
        super().get_results(request)
        columns = getattr(self.model_admin, "list_columns", None)
        if columns and isinstance(self.result_list, QuerySet):
            self.result_list = self.result_list.only(*columns)

    @cached_property
    def change_url_pattern(self) -> str:
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=(self.PLACEHOLDER,),
            current_app=self.model_admin.admin_site.name,
        )

    def url_for_result(self, result) -> str:
        pk = getattr(result, self.pk_attname)
        if isinstance(pk, int):
            url = self.change_url_pattern.replace(self.PLACEHOLDER, str(pk), 1)
        else:  # a text key: Django's quoting
            url = super().url_for_result(result)
        return f"{url}?{self.row_filters}" if self.row_filters else url


class QuickListPage:
    """A ModelAdmin mixin: the list is a QuickChangeList. ``list_columns`` names the
    columns its rows are read with (a related row's as ``member__name``, its foreign
    key included); None reads them all."""

    list_columns: list[str] | None = None

    def get_changelist(self, request, **kwargs):
        return QuickChangeList


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records nobody may add, change or delete: history, gifts, the audit log."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class QuickManagementForm(ManagementForm):
    """Django's management form (an inline's four hidden counts), written as HTML.

    Django renders each of the four hidden inputs through the form renderer's
    templates: twenty on a member's page (five inlines), a tenth of its time. Here an
    unbound one writes the same markup itself; a bound one (a POST shown again with
    its errors) renders as Django's.
    """

    def render(self, template_name=None, context=None, renderer=None):
        fields = list(self)
        if (
            self.is_bound
            or template_name
            or context
            or renderer
            or not all(f.auto_id and f.value() is not None for f in fields)
        ):
            return super().render(template_name, context, renderer)
        return format_html_join(
            "",
            '<input type="hidden" name="{}" value="{}" id="{}">',
            ((f.html_name, f.value(), f.auto_id) for f in fields),
        )

    __str__ = __html__ = render


class QuickManagementFormSet:
    """An inline formset mixin: its management form is a QuickManagementForm."""

    @cached_property
    def management_form(self):
        if self.is_bound:
            return super().management_form
        return QuickManagementForm(
            auto_id=self.auto_id,
            prefix=self.prefix,
            initial={
                "TOTAL_FORMS": self.total_form_count(),
                "INITIAL_FORMS": self.initial_form_count(),
                "MIN_NUM_FORMS": self.min_num,
                "MAX_NUM_FORMS": self.max_num,
            },
            renderer=self.renderer,
        )


class InlineRefusal(Exception):
    """A service refused what one inline form asked for; carries which form it was."""

    def __init__(self, prefix: str, index: int, error: ValidationError):
        super().__init__(error)
        self.prefix, self.index, self.error = prefix, index, error


@contextmanager
def refusal_of(formset, index: int):
    """Report a service's ValidationError against the inline form at ``index``."""
    try:
        yield
    except ValidationError as exc:
        raise InlineRefusal(formset.prefix, index, exc) from exc


def add_service_errors(form, error: ValidationError) -> None:
    """A service's ValidationError on a form: under the field it names, else at the top."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


class ServiceRefusalsAsFormErrors:
    """A ModelAdmin mixin: a service that refuses while saving shows as a form error.

    The admin saves inside one transaction (``changeform_view``), so a refusal raised
    from ``save_model``, ``save_related`` or ``save_formset`` rolls everything back.
    The view then runs once more on the same POST with the refusal attached to the
    form (or to the inline form that asked for it), so Django renders the page with
    the error where the operator looks, and nothing is saved.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (ValidationError, InlineRefusal) as refusal:
            if request.method != "POST" or getattr(request, "_service_refusal", None):
                raise
            request._service_refusal = refusal
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        refusal = getattr(request, "_service_refusal", None)
        if not isinstance(refusal, ValidationError):
            return form_class

        class RefusedForm(form_class):
            def clean(self):
                data = super().clean()
                add_service_errors(self, refusal)
                return data

        return RefusedForm

    def get_formsets_with_inlines(self, request, obj=None):
        refusal = getattr(request, "_service_refusal", None)
        for formset_class, inline in super().get_formsets_with_inlines(request, obj):
            if isinstance(refusal, InlineRefusal):
                formset_class = _refused_formset(formset_class, refusal)
            yield formset_class, inline


def _refused_formset(formset_class, refusal: InlineRefusal):
    class RefusedFormSet(formset_class):
        def clean(self):
            super().clean()
            if self.prefix == refusal.prefix and refusal.index < len(self.forms):
                add_service_errors(self.forms[refusal.index], refusal.error)

    return RefusedFormSet


LABELLED_APPS = ["membership", "points", "subscriptions", "b2b"]


def translate_default_field_labels() -> None:
    """Fields declared without a verbose name read in the operator's language too.

    Django names such a field after itself ("member", "account"), untranslated, so
    the admin showed MEMBER and ACCOUNT in zh-Hant. Here its label becomes the
    translation of that same word. Only the runtime label changes: deconstruct()
    keeps the declared one, so no migration follows. A verbose_name written on the
    field itself wins (this touches only fields declared without one).
    """
    for config in (apps.get_app_config(label) for label in LABELLED_APPS):
        for model in config.get_models():
            for field in model._meta.get_fields():
                if getattr(field, "_verbose_name", "declared") is None:
                    field.verbose_name = gettext_lazy(field.verbose_name)


@admin.display(description=gettext_lazy("discount"), ordering="discount_percent")
def discount_column(tier) -> str:
    """A tier's discount in the list, as the member page writes it (95 折 / 5% off)."""
    return discount(tier.discount_percent)


def registered_admins(app_config=None) -> list[tuple[type, admin.ModelAdmin]]:
    """Each registered model (of ``app_config``, or of every app) with its ModelAdmin,
    through the admin site's public API."""
    models = app_config.get_models() if app_config is not None else apps.get_models()
    return [(m, admin.site.get_model_admin(m)) for m in models if admin.site.is_registered(m)]


def grouped(model, field_name: str):
    """A list column for a whole number of NT$ or points, with thousands separators
    (12,000, as the member page writes it; Django's own column shows 12000), sorted by
    the field and headed by its name. A method of the ModelAdmin that names it."""

    @admin.display(description=model._meta.get_field(field_name).verbose_name, ordering=field_name)
    def column(_model_admin, obj) -> str:
        return nt(getattr(obj, field_name))

    return column
