from django.db.models.expressions import RawSQL

from .models import Subscription
from .services import current_plan, free_plan


def subscription_columns(now) -> dict:
    # The live subscription's id in the page's one read (the order of ``current_plan``):
    # a member without one is shown the cached free plan and costs no query.
    return {
        "live_subscription_id": RawSQL(
            "SELECT s.id FROM subscriptions_subscription s "
            "WHERE s.member_id = membership_member.id AND s.state <> %s "
            "ORDER BY s.created_at DESC, s.id DESC LIMIT 1",
            [Subscription.State.EXPIRED.value],
        )
    }


def subscription_panel(member):
    if hasattr(member, "live_subscription_id"):
        if member.live_subscription_id is None:
            plan, subscription = free_plan(), None
        else:
            subscription = Subscription.objects.select_related("plan", "next_plan").get(
                pk=member.live_subscription_id
            )
            plan = subscription.plan
    else:
        plan, subscription = current_plan(member)
    if plan is None:
        return None
    return "members/panels/subscription.html", {"plan": plan, "subscription": subscription}
