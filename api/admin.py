from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.formats import date_format
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .admin_views import may_revoke, revoke_key_view
from .keys import create_api_key, revoke_api_key
from .models import (
    ApiKey,
    IdempotencyRecord,
    Scope,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from .webhooks.endpoints import create_endpoint, update_endpoint, validate_url
from .webhooks.sending import redeliver


class ApiAdmin(admin.ModelAdmin):
    class Media:
        css = {"all": ["api/admin.css"]}


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"), choices=Scope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes"]


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", _("in use")), ("revoked", _("revoked"))]

    def queryset(self, request, queryset):
        if self.value() in ("active", "revoked"):
            return queryset.filter(revoked_at__isnull=self.value() == "active")
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(ApiAdmin):
    """A key is made once and never edited: its page only shows it, with a button to
    revoke it (the change permission is the right to revoke). It is never deleted either:
    its use is on record (idempotency keys, the audit log)."""

    list_display = ["name", "prefix", "scope_list", "last_used_at", "status"]
    list_filter = [ApiKeyStatusFilter]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]
    readonly_fields = ["name", "prefix", "scope_list", "created_by", "created_at"]
    readonly_fields += ["last_used_at", "revoked_at"]
    change_form_template = "admin/api/apikey/change_form.html"

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ["name", "scopes"] if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        revoke = path(
            "<int:key_id>/revoke/",
            self.admin_site.admin_view(revoke_key_view),
            name="api_apikey_revoke",
        )
        return [revoke, *super().get_urls()]

    def render_change_form(self, request, context, *args, **kwargs):
        context["can_revoke"] = may_revoke(request.user)
        return super().render_change_form(request, context, *args, **kwargs)

    @admin.display(description=_("scopes"))
    def scope_list(self, obj: ApiKey):
        return format_html_join(mark_safe("<br>"), "{}", ((_label(Scope, s),) for s in obj.scopes))

    @admin.display(description=_("status"))
    def status(self, obj: ApiKey) -> str:
        if obj.revoked_at is None:
            return _("in use")
        return _("revoked %(date)s") % {"date": date_format(localtime(obj.revoked_at), "Y-m-d")}

    def save_model(self, request, obj, form, change):
        new = create_api_key(name=obj.name, scopes=obj.scopes, actor=request.user)
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(new.api_key, field.attname))
        obj._state.adding = False
        request.new_api_key = new.plaintext

    def response_add(self, request, obj, post_url_continue=None):
        response = TemplateResponse(
            request,
            "admin/api/apikey/created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": obj,
                "plaintext": request.new_api_key,
                "title": _("API key created"),
            },
        )
        # The key is on this page once: no cache keeps it.
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Revoke the selected API keys"), permissions=["change"])
    def revoke(self, request, queryset):
        revoked = 0
        for pk in queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True):
            revoke_api_key(api_key_id=pk, actor=request.user)
            revoked += 1
        if not revoked:
            self.message_user(
                request, _("The selected API keys were already revoked."), messages.WARNING
            )
            return
        self.message_user(
            request,
            ngettext("%(n)d API key revoked.", "%(n)d API keys revoked.", revoked) % {"n": revoked},
        )


def _label(choices, value: str) -> str:
    """A stored choice's label (a value no longer among the choices shows as it is)."""
    try:
        return str(choices(value).label)
    except ValueError:
        return value


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    """Read-only: which retries of a shop reached us, and the answer they were given."""

    list_display = ["key", "api_key", "status", "created_at", "completed_at"]
    list_filter = ["api_key", "status"]
    search_fields = ["key"]
    list_select_related = ["api_key"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class WebhookEndpointForm(forms.ModelForm):
    # A URL typed without a scheme is taken as https (Django's default, http, is refused
    # in production: the operator would be told "https only" for what they never typed).
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        label=_("events"), choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "events", "active"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            validate_url(url)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["url"]) from exc
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ApiAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "description", "event_list", "active", "failing_since"]
    list_filter = ["active"]
    search_fields = ["url", "description"]
    readonly_fields = ["created_by", "created_at", "failing_since", "disabled_at"]
    readonly_fields += ["disabled_reason"]

    def get_fields(self, request, obj=None):
        fields = ["url", "description", "events", "active"]
        return fields if obj is None else fields + self.readonly_fields

    @admin.display(description=_("events"))
    def event_list(self, obj: WebhookEndpoint):
        return format_html_join(
            mark_safe("<br>"), "{}", ((_label(WebhookEvent, e),) for e in obj.events)
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            update_endpoint(
                endpoint_id=obj.pk,
                url=data["url"],
                events=data["events"],
                description=data.get("description", ""),
                active=data.get("active", False),
                actor=request.user,
            )
            obj.refresh_from_db()
            return
        new = create_endpoint(
            url=data["url"],
            events=data["events"],
            description=data.get("description", ""),
            actor=request.user,
        )
        for field in WebhookEndpoint._meta.concrete_fields:
            setattr(obj, field.attname, getattr(new.endpoint, field.attname))
        obj._state.adding = False
        request.new_webhook_secret = new.secret

    def response_add(self, request, obj, post_url_continue=None):
        response = TemplateResponse(
            request,
            "admin/api/webhookendpoint/created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": obj,
                "secret": request.new_webhook_secret,
                "title": _("Webhook endpoint created"),
            },
        )
        response["Cache-Control"] = "no-store"  # the secret is on this page once
        return response


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ApiAdmin):
    """The delivery log: what was owed to which endpoint, and how each attempt went."""

    list_display = ["event", "endpoint", "status", "attempts", "response_code", "next_attempt_at"]
    list_filter = ["status", "event", "endpoint"]
    search_fields = ["event_id"]
    list_select_related = ["endpoint"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["redeliver_selected"]
    readonly_fields = ["endpoint", "event", "event_id", "payload", "status", "attempts"]
    readonly_fields += ["response_code", "last_error", "created_at", "last_attempt_at"]
    readonly_fields += ["next_attempt_at", "retry_until", "delivered_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # The change permission is the right to redeliver; the row itself is never edited.
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Redeliver the selected webhooks now"), permissions=["change"])
    def redeliver_selected(self, request, queryset):
        queued, refused = redeliver(
            delivery_ids=list(queryset.values_list("pk", flat=True)), actor=request.user
        )
        self.message_user(
            request,
            ngettext(
                "%(n)d webhook queued for redelivery.",
                "%(n)d webhooks queued for redelivery.",
                queued,
            )
            % {"n": queued},
        )
        if refused:
            self.message_user(
                request,
                ngettext(
                    "%(n)d webhook was not queued: its endpoint is turned off.",
                    "%(n)d webhooks were not queued: their endpoint is turned off.",
                    refused,
                )
                % {"n": refused},
                level=messages.WARNING,
            )
