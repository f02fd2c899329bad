"""Webhook endpoints: made and changed by operators (audited), their URLs checked, and
turned off after a day of failures with the operators told.

Where a webhook may go (against server-side request forgery): unless
``WEBHOOKS_ALLOW_PRIVATE`` is on (the default only with DEBUG, for development and
tests), a URL must be https and its host must not be ``localhost`` or a private,
loopback, link-local or reserved address. The form checks the URL as written; the sender
resolves the host again before every attempt and refuses a name that now points inside
(``check_destination``), since DNS can change after the endpoint was saved.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from membership.outbox import enqueue
from membership.services import record_audit

from ..models import WebhookDelivery, WebhookEndpoint, WebhookEvent

SECRET_PREFIX = "whsec_"
LOCAL_NAMES = ("localhost", ".localhost", ".local", ".internal", ".home.arpa")


class UnsafeDestination(Exception):
    """The URL's host is (or now resolves to) an address webhooks may not reach."""


@dataclass
class NewEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown to the operator once


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def validate_url(url: str) -> None:
    """Refuse a URL webhooks may not be sent to (see the module's docstring)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError({"url": _("Enter a full http(s) URL.")})
    if parts.username or parts.password:
        raise ValidationError({"url": _("A webhook URL may not carry a user name or password.")})
    if settings.WEBHOOKS_ALLOW_PRIVATE:
        return
    if parts.scheme != "https":
        raise ValidationError({"url": _("Webhooks are sent over https only.")})
    host = parts.hostname.lower().rstrip(".")
    if host == "localhost" or host.endswith(LOCAL_NAMES):
        raise ValidationError({"url": _("Webhooks may not be sent to this machine's network.")})
    try:
        public = _public(host)
    except ValueError:
        return  # a name: checked again, resolved, before each delivery
    if not public:
        raise ValidationError(
            {"url": _("Webhooks may not be sent to a private or reserved address.")}
        )


def check_destination(url: str) -> None:
    """Before a delivery: every address the host resolves to must be public (unless allowed)."""
    if settings.WEBHOOKS_ALLOW_PRIVATE:
        return
    parts = urlsplit(url)
    try:
        validate_url(url)
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (ValidationError, OSError) as exc:
        raise UnsafeDestination(str(exc)) from exc
    if not infos or not all(_public(info[4][0]) for info in infos):
        raise UnsafeDestination(_("The host resolves to a private or reserved address."))


def _clean_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(WebhookEvent.values))
    if unknown:
        raise ValidationError({"events": _("Unknown events: %(e)s") % {"e": ", ".join(unknown)}})
    if not events:
        raise ValidationError({"events": _("Choose at least one event.")})
    return sorted(set(events))


def create_endpoint(*, url: str, events: list[str], description: str = "", actor) -> NewEndpoint:
    """Register an endpoint with a new signing secret (returned once). Audited."""
    validate_url(url)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        endpoint = WebhookEndpoint(
            url=url,
            description=description.strip(),
            events=_clean_events(events),
            secret=secret,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        endpoint.full_clean()
        endpoint.save()
        record_audit(
            actor=actor,
            action="webhook_endpoint.add",
            obj=endpoint,
            after={"url": url, "events": endpoint.events, "description": endpoint.description},
        )
    return NewEndpoint(endpoint=endpoint, secret=secret)


def update_endpoint(
    *, endpoint_id: int, url: str, events: list[str], description: str, active: bool, actor
) -> WebhookEndpoint:
    """Change an endpoint's URL, events, description or active flag. Turning it on again
    forgets its failures; turning it off records when and by whom. Audited; saving it
    unchanged writes nothing."""
    validate_url(url)
    events = _clean_events(events)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
        fields = ("url", "events", "description", "active")
        before = {f: getattr(endpoint, f) for f in fields}
        after = {"url": url, "events": events, "description": description.strip()}
        after["active"] = active
        if before == after:
            return endpoint
        for name, value in after.items():
            setattr(endpoint, name, value)
        if active and not before["active"]:
            endpoint.failing_since = endpoint.disabled_at = None
            endpoint.disabled_reason = ""
        elif before["active"] and not active:
            # Turned off by hand: when and by whom, as an automatic turn-off records why.
            endpoint.disabled_at = timezone.now()
            with translation.override(settings.LANGUAGE_CODE):  # stored, read by anyone
                endpoint.disabled_reason = _("Turned off by %(user)s.") % {"user": actor or "—"}
        endpoint.full_clean()
        endpoint.save()
        changed = [f for f in fields if before[f] != after[f]]
        record_audit(
            actor=actor,
            action="webhook_endpoint.change",
            obj=endpoint,
            before={f: before[f] for f in changed},
            after={f: after[f] for f in changed},
        )
    return endpoint


def disable_failing_endpoint(*, endpoint_id: int, now) -> bool:
    """Turn off an endpoint that has failed for a day; its pending deliveries fail with it
    and the operators are told (an outbox follow-up). True if this call turned it off."""
    reason = _("Every delivery failed for 24 hours; turned off automatically.")
    with transaction.atomic():
        turned_off = WebhookEndpoint.objects.filter(pk=endpoint_id, active=True).update(
            active=False, disabled_at=now, disabled_reason=reason
        )
        if not turned_off:
            return False
        WebhookDelivery.objects.filter(
            endpoint_id=endpoint_id, status=WebhookDelivery.Status.PENDING
        ).update(status=WebhookDelivery.Status.FAILED, next_attempt_at=None)
        endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
        record_audit(
            actor=None,
            action="webhook_endpoint.disable",
            obj=endpoint,
            before={"active": True},
            after={"active": False},
            reason=reason,
        )
        enqueue("api.tasks.tell_operators_endpoint_disabled", endpoint_id=endpoint_id)
    return True


def tell_operators_endpoint_disabled(*, endpoint_id: int) -> int:
    """E-mail every active staff user who may change webhook endpoints. Returns how many."""
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    can_change = (
        Q(is_superuser=True)
        | Q(user_permissions__codename="change_webhookendpoint")
        | Q(groups__permissions__codename="change_webhookendpoint")
    )
    addresses = sorted(
        set(
            get_user_model()
            .objects.filter(can_change, is_active=True, is_staff=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )
    )
    if not addresses:
        return 0
    with translation.override(settings.LANGUAGE_CODE):
        subject = _("Webhook endpoint turned off: %(url)s") % {"url": endpoint.url}
        body = _(
            "Every delivery to %(url)s failed for 24 hours, so it was turned off at %(at)s.\n"
            "Last error: %(error)s\n\n"
            "Fix the receiver, turn the endpoint on again in the admin (Shop API › Webhook "
            "endpoints) and redeliver what it missed from the delivery log."
        ) % {
            "url": endpoint.url,
            "at": timezone.localtime(endpoint.disabled_at).strftime("%Y-%m-%d %H:%M"),
            "error": _last_error(endpoint_id),
        }
    send_mail(subject, body, None, addresses)
    return len(addresses)


def _last_error(endpoint_id: int) -> str:
    last = (
        WebhookDelivery.objects.filter(endpoint_id=endpoint_id, last_attempt_at__isnull=False)
        .order_by("-last_attempt_at")
        .values_list("last_error", flat=True)
        .first()
    )
    return last or "—"
