from .services import current_plan


def subscription_panel(member):
    plan, subscription = current_plan(member)
    if plan is None:
        return None
    return "members/panels/subscription.html", {"plan": plan, "subscription": subscription}
