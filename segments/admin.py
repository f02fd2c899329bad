import copy

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import (
    Http404,
    HttpResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from config.replica import reads_from_replica
from imports import exports
from membership.admin.common import EstimatedCountPaginator, ReadOnlyAdmin
from membership.models import Member, Tag

from . import audiences, dashboard
from .filters import MemberFilter
from .kpis import SMALL_GROUP_SHARE
from .models import Audience, MemberSegment, SegmentSettings
from .services import BEHAVIOUR_TAGS, CELL_TAGS, CELLS, LIFECYCLE_TAGS


def _high_low(high: bool) -> str:
    return str(_("high") if high else _("low"))


@admin.register(SegmentSettings)
class SegmentSettingsAdmin(admin.ModelAdmin):
    """The boundaries of every segment, with the RFM cells they name, on one page."""

    readonly_fields = ["rfm_cells", "system_tags"]
    fieldsets = [
        (_("RFM"), {"fields": ["rfm_months", "high_score", "rfm_cells"]}),
        (_("Lifecycle"), {"fields": ["new_days", "active_days", "churn_days", "mature_orders"]}),
        (
            _("Behaviour"),
            {
                "fields": [
                    "big_spender_score",
                    "promotion_share",
                    "promotion_min_orders",
                    "loyal_quarters",
                    "loyal_days",
                ]
            },
        ),
        (_("System tags"), {"fields": ["system_tags"]}),
    ]

    def has_add_permission(self, request):
        return False  # one row, made by the migration; the operator edits it

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("RFM cells"))
    def rfm_cells(self, obj):
        header = format_html_join(
            "", "<th>{}</th>", [(_("R"),), (_("F"),), (_("M"),), (_("cell"),), (_("tag"),)]
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            [
                (_high_low(r), _high_low(f), _high_low(m), cell.label, CELL_TAGS[cell])
                for (r, f, m), cell in CELLS.items()
            ],
        )
        return format_html_join(
            "", "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", [(header, rows)]
        )

    @admin.display(description=_("system tags"))
    def system_tags(self, obj):
        names = [*CELL_TAGS.values(), *LIFECYCLE_TAGS.values(), *BEHAVIOUR_TAGS.values()]
        return "、".join(names)


@admin.register(MemberSegment)
class MemberSegmentAdmin(ReadOnlyAdmin):
    list_display = [
        "member",
        "recency",
        "frequency",
        "monetary",
        "rfm_cell",
        "lifecycle",
        "big_spender",
        "promotion_hunter",
        "loyalist",
        "period_spend",
        "last_order_at",
    ]
    list_filter = ["rfm_cell", "lifecycle", "big_spender", "promotion_hunter", "loyalist"]
    list_select_related = ["member"]
    search_fields = ["member__name", "=member__external_id"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def get_urls(self):
        return DashboardViews(self.admin_site).urls() + super().get_urls()


MULTIPLE = {name for name, f in MemberFilter.base_filters.items() if "Multiple" in type(f).__name__}


class AudienceFormBase(forms.ModelForm):
    """The audience's name and description, and every member filter as a field of its own."""

    class Meta:
        model = Audience
        fields = ["name", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            saved = QueryDict(self.instance.query)
            for name, values in saved.lists():
                if name in self.fields:
                    self.initial[name] = values if name in MULTIPLE else values[0]

    def filter_query(self) -> QueryDict:
        """The filters as the query string the FilterSet reads."""
        return self.data.copy() if self.is_bound else QueryDict()

    def clean(self):
        cleaned = super().clean()
        filterset, _members = audiences.filter_members(self.filter_query())
        for name, problems in filterset.errors.items():
            for problem in problems:
                self.add_error(name if name in self.fields else None, problem)
        return cleaned


# The FilterSet's own form fields, declared on the audience form (one definition of each).
AudienceForm = type(AudienceFormBase)(
    "AudienceForm",
    (AudienceFormBase,),
    {name: copy.deepcopy(f.field) for name, f in MemberFilter.base_filters.items()},
)


class TagChoiceForm(forms.Form):
    tag = forms.ModelChoiceField(
        label=_("tag"), queryset=Tag.objects.filter(kind=Tag.Kind.OPERATOR)
    )
    reason = forms.CharField(label=_("reason"), max_length=200)


@admin.register(Audience)
class AudienceAdmin(admin.ModelAdmin):
    """An audience is built on its own change form: its name, the member filters, and a
    "count" button that shows today's count and a sample before anything is saved."""

    form = AudienceForm
    list_display = ["name", "description", "created_by", "updated_at"]
    search_fields = ["name"]
    actions = ["export_members", "tag_members", "untag_members"]
    SAMPLE = 20

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["name", "description"]}),
            (_("Which members"), {"fields": list(MemberFilter.base_filters)}),
        ]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        if request.method == "POST" and "_preview" in request.POST:
            # Count, show a sample, save nothing: the page again as typed, as a GET would
            # show it (the form is posted, so its CSRF token never lands in a URL).
            typed = request.POST.copy()
            typed.pop("csrfmiddlewaretoken", None)
            filterset, members = audiences.filter_members(typed)
            extra_context["preview"] = {
                "count": members.count() if filterset.is_valid() else None,
                "errors": filterset.errors,
                "sample": members.select_related("group", "tier")[: self.SAMPLE],
            }
            request.method, request.GET, request._audience_typed = "GET", QueryDict(), typed
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        typed = getattr(request, "_audience_typed", None)
        if typed is None:
            return form

        class TypedForm(form):
            """The form as the operator left it before counting (lists keep every value)."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                for name, values in typed.lists():
                    if name in self.fields:
                        self.initial[name] = values if name in MULTIPLE else values[-1]

        return TypedForm

    def save_model(self, request, obj, form, change):
        audiences.save_audience(
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            query=form.filter_query(),
            actor=request.user,
            audience=obj,
        )

    @admin.action(description=_("Export the members of the selected audiences (CSV)"))
    def export_members(self, request, queryset):
        if not request.user.has_perm("imports.export_members"):
            raise PermissionDenied
        members = Member.objects.none()
        for audience in queryset:
            members = members | audiences.members_of(audience)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        lines = exports.csv_lines(
            exports.header(exports.MEMBER_COLUMNS), exports.member_rows(members.distinct())
        )
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audience-{stamp}.csv"'
        return response

    @admin.action(description=_("Add a tag to the members of the selected audiences"))
    def tag_members(self, request, queryset):
        return self._tag(request, queryset, add=True)

    @admin.action(description=_("Remove a tag from the members of the selected audiences"))
    def untag_members(self, request, queryset):
        return self._tag(request, queryset, add=False)

    def _tag(self, request, queryset, *, add: bool):
        if not request.user.has_perm("membership.change_member"):
            raise PermissionDenied
        form = TagChoiceForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            for audience in queryset:
                try:
                    changed, _result = audiences.tag_audience(
                        audience=audience,
                        tag=form.cleaned_data["tag"],
                        add=add,
                        actor=request.user,
                        reason=form.cleaned_data["reason"],
                    )
                except ValidationError as error:
                    self.message_user(request, " ".join(error.messages), messages.ERROR)
                    return None
                self.message_user(
                    request,
                    _("%(audience)s: %(n)d members changed.")
                    % {"audience": audience.name, "n": changed},
                )
            return None
        return TemplateResponse(
            request,
            "admin/segments/audience/tag.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("Add a tag") if add else _("Remove a tag"),
                "form": form,
                "audiences": queryset,
                "action": request.POST.get("action"),
            },
        )


class DashboardViews:
    """The KPI dashboard: one page, its charts as SVG images, their tables as CSV."""

    permission = "segments.view_tiersnapshot"

    def __init__(self, admin_site):
        self.admin_site = admin_site

    def urls(self):
        # Read from the replica when there is one (config/replica.py).
        view = lambda v: self.admin_site.admin_view(reads_from_replica(v))  # noqa: E731
        return [
            path("dashboard/", view(self.page), name="segments_dashboard"),
            path("dashboard/<slug:name>.svg", view(self.chart), name="segments_dashboard_chart"),
            path("dashboard/<slug:name>.csv", view(self.download), name="segments_dashboard_csv"),
        ]

    def _check(self, request):
        if not request.user.has_perm(self.permission):
            raise PermissionDenied

    def page(self, request):
        self._check(request)
        grid = dashboard.rfm_grid_table()
        context = {
            **self.admin_site.each_context(request),
            "title": _("KPI dashboard"),
            "figures": dashboard.tier_figures(),
            "small_share": SMALL_GROUP_SHARE,
            "points_rate": settings.POINTS_NTD_PER_POINT,
            "charts": [
                (name, dashboard.TABLES[name]()) for name in ("tier_mix", "movements", "lifecycle")
            ],
            "grid": grid,
            "grid_cells": list(zip(grid.rows, dashboard.heat_levels(grid), strict=True)),
        }
        return TemplateResponse(request, "admin/segments/dashboard.html", context)

    def chart(self, request, name):
        self._check(request)
        if name not in ("tier_mix", "movements", "lifecycle"):
            raise Http404
        response = HttpResponse(dashboard.chart_svg(name), content_type="image/svg+xml")
        # The picture is a document of its own: its styles are inline, and it runs nothing.
        response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        return response

    def download(self, request, name):
        self._check(request)
        if name not in dashboard.TABLES:
            raise Http404
        table = dashboard.TABLES[name]()
        response = StreamingHttpResponse(
            exports.csv_lines([str(h) for h in table.header], table.rows),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response
