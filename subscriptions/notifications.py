"""E-mails about a member's subscription, in the member's language."""

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import translation

KINDS = ("reminder", "payment_failed", "expired")


def notify(subscription, kind: str) -> None:
    assert kind in KINDS
    member = subscription.member
    if not member.email:
        return
    language = member.language or settings.LANGUAGE_CODE
    with translation.override(language):
        context = {"member": member, "subscription": subscription}
        body = render_to_string(f"subscriptions/email/{kind}.{language}.txt", context)
    subject, _, text = body.partition("\n")
    send_mail(subject.strip(), text.strip(), settings.DEFAULT_FROM_EMAIL, [member.email])
