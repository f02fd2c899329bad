"""Subscriptions and charge attempts in a file. See membership.resources."""

from django.utils.translation import gettext_lazy

from membership.resources import ListResource

from .models import ChargeAttempt, Subscription

MEMBER_NUMBER = gettext_lazy("member number")


class SubscriptionResource(ListResource):
    labels = {"member__external_id": MEMBER_NUMBER, "member__name": gettext_lazy("member")}
    select_related = ("member", "plan", "next_plan")

    class Meta:
        model = Subscription
        fields = (
            "member__external_id",
            "member__name",
            "plan",
            "state",
            "period_start",
            "period_end",
            "grace_until",
            "next_attempt_at",
            "next_plan",
            "created_at",
        )


class ChargeAttemptResource(ListResource):
    labels = {
        "subscription__member__external_id": MEMBER_NUMBER,
        "subscription__member__name": gettext_lazy("member"),
    }
    select_related = ("subscription__member", "subscription__plan")

    class Meta:
        model = ChargeAttempt
        fields = (
            "created_at",
            "subscription__member__external_id",
            "subscription__member__name",
            "subscription__plan",
            "period_start",
            "attempt",
            "amount",
            "result",
            "gateway_reference",
            "message",
            "idempotency_key",
            "answered_at",
        )
