"""Programme versions in the admin: a draft's rules and thresholds, its diff, its impact
preview with the chart, and publishing from a date. Everything goes through
``membership.services.versions`` and ``membership.services.preview``."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from membership.models import (
    AdjustProposal,
    AdjustRule,
    ProgrammeVersion,
    VersionGroupRule,
    VersionTierThreshold,
)
from membership.services import autoadjust, record_audit, snapshot, versions
from membership.services import preview as previews
from membership.services.programme import Rung, ladder_problems


class DraftOnlyInline:
    """Rows of a draft are edited; rows of any other version are shown, never changed."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return (obj is None or obj.editable) and super().has_change_permission(request, obj)


class ThresholdLadderFormSet(BaseInlineFormSet):
    """A draft's thresholds checked together, group by group (the programme's rule)."""

    def clean(self):
        super().clean()
        by_group: dict[int, list[Rung]] = {}
        forms_by_key = {}
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            tier = form.instance.tier
            forms_by_key[tier.pk] = form
            by_group.setdefault(tier.group_id, []).append(
                Rung(
                    tier.pk,
                    tier.rank,
                    tier.name,
                    data.get("upgrade_threshold"),
                    data.get("retention_threshold"),
                )
            )
        problems = [p for rungs in by_group.values() for p in ladder_problems(rungs)]
        for problem in problems:
            forms_by_key[problem.key].add_error(problem.field, problem.message)
        if problems:
            raise ValidationError([p.message for p in problems])


class GroupRuleInline(DraftOnlyInline, admin.TabularInline):
    model = VersionGroupRule
    fields = ["group", "entry_amount", "entry_requires", "metric", "window", "review_period_months"]
    readonly_fields = ["group"]


class ThresholdInline(DraftOnlyInline, admin.TabularInline):
    model = VersionTierThreshold
    formset = ThresholdLadderFormSet
    fields = ["tier", "upgrade_threshold", "retention_threshold"]
    readonly_fields = ["tier"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tier__group")


class DraftForm(forms.ModelForm):
    """The add page: a new draft is a copy of the live version or of any earlier one."""

    class Meta:
        model = ProgrammeVersion
        fields = ["name", "copied_from"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "copied_from" in self.fields:
            field = self.fields["copied_from"]
            field.queryset = ProgrammeVersion.objects.exclude(
                status=ProgrammeVersion.Status.REJECTED
            )
            field.required = False
            field.help_text = _("Blank copies the live version.")


class PublishForm(forms.Form):
    effective_from = forms.DateTimeField(
        label=_("effective from"),
        help_text=_("Local time (Asia/Taipei). By default midnight two days from today."),
    )
    ends_on = forms.DateField(
        label=_("ends on"),
        required=False,
        help_text=_("A seasonal version: from this day the version it replaced is live again."),
    )
    now = forms.BooleanField(
        label=_("Make it live now instead"),
        required=False,
        help_text=_("Moves members at once; tick the confirmation below too."),
    )
    confirm_now = forms.BooleanField(
        label=_("I have read the impact preview and want it live now"), required=False
    )

    def clean(self):
        data = super().clean()
        if data.get("now") and not data.get("confirm_now"):
            raise ValidationError(_("To make the version live now, tick the confirmation."))
        moment = data.get("effective_from")
        if moment and not data.get("now") and moment <= timezone.now():
            self.add_error(
                "effective_from",
                _("The moment has passed: choose a later one, or make it live now."),
            )
        return data


@admin.register(ProgrammeVersion)
class ProgrammeVersionAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "name",
        "status",
        "effective_from",
        "ends_on",
        "created_by",
        "published_by",
    ]
    list_filter = ["status"]
    search_fields = ["name"]
    inlines = [GroupRuleInline, ThresholdInline]
    change_form_template = "admin/membership/programmeversion/change_form.html"
    readonly_fields = [
        "number",
        "status",
        "copied_from",
        "replaces",
        "effective_from",
        "ends_on",
        "created_by",
        "created_at",
        "published_by",
        "published_at",
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = DraftForm
            kwargs["fields"] = ["name", "copied_from"]
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["name", "copied_from"]})]
        return [(None, {"fields": ["name", *self.readonly_fields]})]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [*self.readonly_fields, *([] if obj.editable else ["name"])]

    def get_inline_instances(self, request, obj=None):
        return [] if obj is None else super().get_inline_instances(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # versions are the programme's history; a draft is rejected instead

    def save_model(self, request, obj, form, change):
        if change:
            before = snapshot(ProgrammeVersion.objects.get(pk=obj.pk), ["name"])
            super().save_model(request, obj, form, change)
            if before != snapshot(obj, ["name"]):
                record_audit(
                    actor=request.user,
                    action="programmeversion.change",
                    obj=obj,
                    before=before,
                    after=snapshot(obj, ["name"]),
                )
            return
        draft = versions.create_draft(
            actor=request.user,
            source=form.cleaned_data.get("copied_from"),
            name=form.cleaned_data.get("name", ""),
        )
        obj.pk, obj.number = draft.pk, draft.number
        obj._state.adding = False

    def save_formset(self, request, form, formset, change):
        fields = [f for f in formset.form.base_fields if f not in ("id", "version")]
        befores = {
            f.instance.pk: snapshot(type(f.instance).objects.get(pk=f.instance.pk), fields)
            for f in formset.forms
            if f.instance.pk and f.has_changed()
        }
        super().save_formset(request, form, formset, change)
        for obj, _changed in formset.changed_objects:
            record_audit(
                actor=request.user,
                action="programmeversion.change",
                obj=form.instance,
                object_repr=f"{form.instance} · {obj}"[:200],
                before=befores.get(obj.pk),
                after=snapshot(obj, fields),
            )

    def response_add(self, request, obj, post_url_continue=None):
        return redirect(reverse("admin:membership_programmeversion_change", args=[obj.pk]))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/preview/", wrap(self.preview_view), name="programmeversion_preview"),
            path(
                "<int:pk>/preview/chart.svg",
                wrap(self.chart_view),
                name="programmeversion_preview_chart",
            ),
            path("<int:pk>/publish/", wrap(self.publish_view), name="programmeversion_publish"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = extra_context or {}
        if obj is not None:
            extra["diff"] = versions.diff(obj)
            extra["live"] = versions.live_version()
        return super().change_view(request, object_id, form_url, extra)

    def _version(self, request, pk) -> ProgrammeVersion:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(ProgrammeVersion, pk=pk)

    def preview_view(self, request, pk):
        version = self._version(request, pk)
        result = previews.preview(version, actor=request.user)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Impact preview of %(version)s") % {"version": version},
            "version": version,
            "result": result,
            "diff": versions.diff(version),
            "publish_form": PublishForm(
                initial={"effective_from": timezone.localtime(versions.default_effective_from())}
            ),
            "can_publish": version.editable and self._can_publish(request),
        }
        return TemplateResponse(request, "admin/membership/programmeversion/preview.html", context)

    def chart_view(self, request, pk):
        version = self._version(request, pk)
        result = previews.preview(version, explain=False)
        return HttpResponse(previews.chart_svg(result), content_type="image/svg+xml")

    def _can_publish(self, request) -> bool:
        return request.user.has_perm("membership.publish_programmeversion")

    def publish_view(self, request, pk):
        version = self._version(request, pk)
        if request.method != "POST" or not self._can_publish(request):
            raise PermissionDenied
        form = PublishForm(request.POST)
        back = reverse("admin:programmeversion_preview", args=[pk])
        if not form.is_valid():
            for error in [*form.non_field_errors(), *form.errors.get("effective_from", [])]:
                messages.error(request, error)
            return redirect(back)
        now = timezone.now()
        moment = now if form.cleaned_data["now"] else form.cleaned_data["effective_from"]
        try:
            done = versions.schedule(
                version,
                actor=request.user,
                effective_from=moment,
                ends_on=form.cleaned_data.get("ends_on"),
                now=now,
            )
        except ValidationError as error:
            for message in error.messages:
                messages.error(request, message)
            return redirect(back)
        if done.went_live:
            messages.success(request, gettext("%(version)s is live now.") % {"version": version})
        else:
            messages.success(
                request,
                gettext("%(version)s goes live on %(when)s.")
                % {
                    "version": version,
                    "when": timezone.localtime(done.version.effective_from).strftime(
                        "%Y-%m-%d %H:%M"
                    ),
                },
            )
        return redirect(reverse("admin:membership_programmeversion_change", args=[pk]))


@admin.register(AdjustRule)
class AdjustRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "measure",
        "compare",
        "trigger_percent",
        "step_percent",
        "frequency",
        "bound_percent",
        "notify_only",
        "auto_apply",
        "active",
    ]
    list_filter = ["measure", "active"]

    def save_model(self, request, obj, form, change):
        before = snapshot(AdjustRule.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        record_audit(
            actor=request.user,
            action=f"adjustrule.{'change' if change else 'add'}",
            obj=obj,
            before=before,
            after=snapshot(obj),
        )


@admin.register(AdjustProposal)
class AdjustProposalAdmin(admin.ModelAdmin):
    list_display = ["rule", "period", "status", "draft", "measures", "note", "created_at"]
    list_filter = ["status", "rule"]
    readonly_fields = ["rule", "period", "status", "draft", "measures", "note", "created_at"]
    actions = ["approve", "reject"]

    def has_add_permission(self, request):
        return False  # proposals come from the monthly job

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Approve: publish for two days later"))
    def approve(self, request, queryset):
        self._decide(request, queryset, autoadjust.approve)

    @admin.action(description=_("Reject"))
    def reject(self, request, queryset):
        self._decide(request, queryset, autoadjust.reject)

    def _decide(self, request, queryset, decide):
        for proposal in queryset:
            try:
                decide(proposal, actor=request.user)
            except ValidationError as error:
                messages.error(request, f"{proposal}: {' '.join(error.messages)}")
            else:
                messages.success(request, str(proposal))
