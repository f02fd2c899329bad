"""Plans, subscriptions and charge attempts. State changes go through the services."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from membership.admin.common import ReadOnlyAdmin, ReadOnlyInline
from membership.admin.exports import ListExportMixin
from membership.admin.members import add_member_inline

from . import services
from .models import ChargeAttempt, Plan, Subscription, SubscriptionEvent
from .resources import ChargeAttemptResource, SubscriptionResource


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "price", "interval", "tier", "perks", "is_free"]
    list_select_related = ["tier__group"]
    fieldsets = [
        (
            None,
            {
                "fields": ["name", "price", "interval", "tier", "perks", "is_free", "position"],
                "description": _(
                    "A change of plan takes effect at the start of the next period: the new "
                    "price is charged then and its tier granted from then on (no proration). "
                    "While a subscription is active the member's tier is at least the plan's."
                ),
            },
        )
    ]


# What each event of a subscription means to an operator (the codes services record).
EVENT_LABELS = {
    "subscribed": _("subscribed"),
    "subscribe_failed": _("first payment failed"),
    "cancelled": _("cancelled at period end"),
    "resumed": _("auto-renewal resumed"),
    "renewed": _("renewed"),
    "payment_failed": _("payment failed"),
    "expired_unpaid": _("ended unpaid after the grace period"),
    "ended": _("ended"),
}


def _state_label(state: str) -> str:
    return Subscription.State(state).label if state in Subscription.State.values else state


class EventInline(ReadOnlyInline):
    model = SubscriptionEvent
    fields = ["created_at", "event", "from_label", "to_label", "actor", "reason"]
    readonly_fields = fields

    @admin.display(description=_("event"))
    def event(self, obj: SubscriptionEvent) -> str:
        return EVENT_LABELS.get(obj.kind, obj.kind)

    @admin.display(description=_("from"))
    def from_label(self, obj: SubscriptionEvent) -> str:
        return _state_label(obj.from_state) if obj.from_state else "—"

    @admin.display(description=_("to"))
    def to_label(self, obj: SubscriptionEvent) -> str:
        return _state_label(obj.to_state)


class AttemptInline(ReadOnlyInline):
    model = ChargeAttempt
    fields = [
        "created_at",
        "period_start",
        "attempt",
        "amount",
        "result",
        "gateway_reference",
        "idempotency_key",
    ]


class ReasonForm(ActionForm):
    reason = forms.CharField(required=False, label=_("Reason"))


@admin.register(Subscription)
class SubscriptionAdmin(ListExportMixin, admin.ModelAdmin):
    resource_classes = [SubscriptionResource]
    list_display = [
        "member",
        "plan",
        "state",
        "period_end",
        "grace_until",
        "next_attempt_at",
        "next_plan",
    ]
    list_select_related = ["member", "plan", "next_plan"]
    list_filter = ["state", "plan"]
    search_fields = ["=member__external_id", "member__name"]
    readonly_fields = [
        "member",
        "plan",
        "next_plan",
        "state",
        "period_start",
        "period_end",
        "grace_until",
        "next_attempt_at",
        "reminded_for",
        "created_at",
    ]
    exclude = ["card_token"]
    inlines = [EventInline, AttemptInline]
    action_form = ReasonForm
    actions = ["cancel_action", "resume_action", "retry_action"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("subscriptions.manage_subscription")

    def _each(self, request, queryset, service, done_message):
        reason = request.POST.get("reason", "").strip()
        if not reason:
            self.message_user(request, _("A reason is required."), messages.ERROR)
            return
        done = 0
        for sub in queryset:
            try:
                service(subscription=sub, actor=request.user, reason=reason)
                done += 1
            except ValidationError as exc:
                self.message_user(request, f"{sub}: {' '.join(exc.messages)}", messages.WARNING)
        self.message_user(request, done_message % {"n": done})

    @admin.action(description=_("Cancel at period end"), permissions=["manage"])
    def cancel_action(self, request, queryset):
        self._each(request, queryset, services.cancel, _("%(n)d subscriptions cancelled."))

    @admin.action(description=_("Resume auto-renewal"), permissions=["manage"])
    def resume_action(self, request, queryset):
        self._each(request, queryset, services.resume, _("%(n)d subscriptions resumed."))

    @admin.action(description=_("Retry the payment now"), permissions=["manage"])
    def retry_action(self, request, queryset):
        self._each(request, queryset, services.retry_now, _("%(n)d payments retried."))


@admin.register(ChargeAttempt)
class ChargeAttemptAdmin(ListExportMixin, ReadOnlyAdmin):
    resource_classes = [ChargeAttemptResource]
    list_display = [
        "created_at",
        "subscription",
        "period_start",
        "attempt",
        "amount",
        "result",
        "gateway_reference",
    ]
    list_select_related = ["subscription__member", "subscription__plan"]
    list_filter = ["result"]
    search_fields = ["idempotency_key", "gateway_reference"]


class MemberSubscriptionInline(ReadOnlyInline):
    """On the member page: the member's subscriptions, newest first."""

    model = Subscription
    fields = ["plan", "state", "period_end", "grace_until", "next_plan"]
    verbose_name_plural = _("subscriptions")

    def get_queryset(self, request):
        # The plans are shown by name: read with the rows, not one query a row.
        return super().get_queryset(request).select_related("plan", "next_plan")


add_member_inline(MemberSubscriptionInline)
