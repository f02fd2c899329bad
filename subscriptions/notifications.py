"""E-mails about a member's subscription, in the member's language."""

from membership.services.notifications import email_member

KINDS = ("reminder", "payment_failed", "expired")


def notify(subscription, kind: str) -> None:
    assert kind in KINDS
    email_member(
        member=subscription.member,
        template=f"subscriptions/email/{kind}.{{language}}.txt",
        context={"subscription": subscription},
    )
