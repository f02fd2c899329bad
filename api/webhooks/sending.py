"""Sending webhooks: signed, claimed so two workers never send one row at once, retried
with exponential backoff for a day, and an endpoint failing for a day turned off.

The signature (documented in the README): ``X-VIP-Signature: t=<unix seconds>,v1=<hex>``
where ``v1`` is HMAC-SHA256 with the endpoint's secret over ``"<t>.<body>"``. The body is
the event as JSON: ``{"id", "type", "created_at", "data"}``; ``id`` is the same for every
retry and redelivery, so a receiver drops one it has already seen.

Rows are claimed by pushing their ``next_attempt_at`` past a lease (SELECT … FOR UPDATE
SKIP LOCKED, then UPDATE), outside any transaction while the request runs: a worker that
dies mid-request leaves its rows due again after the lease. Delivery is at least once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from membership.outbox import enqueue
from membership.services import record_audit

from ..models import WebhookDelivery, WebhookEndpoint
from .endpoints import UnsafeDestination, check_destination, disable_failing_endpoint
from .events import RETRY_FOR, SEND_TASK

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-VIP-Signature"
# A claimed row is due again after this (longer than one request can take).
LEASE = dt.timedelta(minutes=2)
TIMEOUT = (5, 10)  # seconds to connect, to read
FIRST_RETRY = dt.timedelta(minutes=1)
LONGEST_WAIT = dt.timedelta(hours=3)
# An endpoint whose deliveries have all failed for this long is turned off.
DISABLE_AFTER = dt.timedelta(hours=24)
BATCH = 50


def body_of(delivery: WebhookDelivery) -> bytes:
    """The event as sent: the same bytes on every attempt."""
    envelope = {
        "id": delivery.event_id,
        "type": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(envelope, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failure: 1, 2, 4 … minutes, at most 3 hours."""
    return min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_WAIT)


def send_due(*, now: dt.datetime | None = None) -> int:
    """Send every delivery that is due, batch by batch. Returns how many were tried."""
    tried = 0
    # An endpoint that failed in this run is not tried again in it: its other rows wait
    # until its failed one is due.
    resting: dict[int, dt.datetime] = {}
    while batch := _claim(now or timezone.now()):
        for delivery in batch:
            if delivery.endpoint_id in resting:
                WebhookDelivery.objects.filter(pk=delivery.pk).update(
                    next_attempt_at=resting[delivery.endpoint_id]
                )
                continue
            next_at = attempt(delivery, now=now or timezone.now())
            tried += 1
            if next_at is not None:
                resting[delivery.endpoint_id] = next_at
    return tried


def _claim(now: dt.datetime) -> list[WebhookDelivery]:
    with transaction.atomic():
        rows = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(
                status=WebhookDelivery.Status.PENDING,
                next_attempt_at__lte=now,
                endpoint__active=True,
            )
            .order_by("next_attempt_at", "id")[:BATCH]
        )
        WebhookDelivery.objects.filter(pk__in=[r.pk for r in rows]).update(
            next_attempt_at=now + LEASE
        )
    return rows


def attempt(delivery: WebhookDelivery, *, now: dt.datetime) -> dt.datetime | None:
    """POST one delivery and record the answer. Returns when it is tried next (None when
    it was delivered or has failed for good)."""
    body = body_of(delivery)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "vip-membership-webhooks/1",
        "X-VIP-Event": delivery.event,
        "X-VIP-Event-Id": delivery.event_id,
        "X-VIP-Delivery": str(delivery.pk),
        SIGNATURE_HEADER: sign(delivery.endpoint.secret, int(now.timestamp()), body),
    }
    code, error = None, ""
    try:
        check_destination(delivery.endpoint.url)
        # No redirects: a 3xx could point anywhere, inside the network too.
        response = requests.post(
            delivery.endpoint.url,
            data=body,
            headers=headers,
            timeout=TIMEOUT,
            allow_redirects=False,
        )
        code = response.status_code
        if not 200 <= code < 300:
            error = _http_failure(code, response.text)
    except (requests.RequestException, UnsafeDestination) as exc:
        error = _request_failure(exc, delivery.endpoint.url)
    if not error:
        _record_success(delivery, code, now)
        return None
    return _record_failure(delivery, code, error, now)


def _http_failure(code: int, answer: str) -> str:
    """A non-2xx answer as the delivery log and the operators' e-mail show it."""
    with translation.override(settings.LANGUAGE_CODE):
        return _in_words(_("The endpoint answered HTTP %(code)s.") % {"code": code}, answer)


def _request_failure(exc: Exception, url: str) -> str:
    """A try that got no answer (refused, timed out, not allowed), likewise."""
    with translation.override(settings.LANGUAGE_CODE):
        if isinstance(exc, UnsafeDestination):
            what = _("Not sent: this address may not receive webhooks.")
        elif isinstance(exc, requests.Timeout):
            what = _("The endpoint did not answer in time.")
        elif isinstance(exc, requests.ConnectionError):
            what = _("Could not connect to %(host)s.") % {"host": urlsplit(url).hostname}
        else:
            what = _("The request could not be sent.")
        return _in_words(what, f"{type(exc).__name__}: {exc}")


def _in_words(what: str, detail: str) -> str:
    """What went wrong in words, in the site's language (a worker has no visitor), then
    the detail for the receiver's developer on a line of its own."""
    detail = detail.strip()[:500]
    return f"{what}\n{_('Detail: %(detail)s') % {'detail': detail}}" if detail else what


def _record_success(delivery: WebhookDelivery, code: int, now: dt.datetime) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.SUCCEEDED,
        attempts=F("attempts") + 1,
        last_attempt_at=now,
        response_code=code,
        last_error="",
        delivered_at=now,
        next_attempt_at=None,
    )
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, failing_since__isnull=False).update(
        failing_since=None
    )


def _record_failure(
    delivery: WebhookDelivery, code: int | None, error: str, now: dt.datetime
) -> dt.datetime | None:
    logger.info("Webhook delivery #%s failed: %s", delivery.pk, error)
    attempts = delivery.attempts + 1
    give_up = now >= delivery.retry_until
    # The last try lands at the end of the day of retries, not before it.
    next_at = None if give_up else min(now + backoff(attempts), delivery.retry_until)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.FAILED if give_up else WebhookDelivery.Status.PENDING,
        attempts=F("attempts") + 1,
        last_attempt_at=now,
        response_code=code,
        last_error=error,
        next_attempt_at=next_at,
    )
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, failing_since__isnull=True).update(
        failing_since=now
    )
    if WebhookEndpoint.objects.filter(
        pk=delivery.endpoint_id, failing_since__lte=now - DISABLE_AFTER
    ).exists():
        disable_failing_endpoint(endpoint_id=delivery.endpoint_id, now=now)
        return None
    return next_at


def redeliver(*, delivery_ids: list[int], actor) -> tuple[int, int]:
    """Send these deliveries again now, each with a new day of retries (an operator's
    action; audited). Deliveries of a turned-off endpoint are left alone.
    Returns (queued, refused)."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .filter(pk__in=delivery_ids)
            .order_by("pk")
        )
        queued = [r for r in rows if r.endpoint.active]
        WebhookDelivery.objects.filter(pk__in=[r.pk for r in queued]).update(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at=now,
            retry_until=now + RETRY_FOR,
            delivered_at=None,
        )
        for row in queued:
            record_audit(
                actor=actor,
                action="webhook_delivery.redeliver",
                obj=row,
                before={"status": row.status},
                after={"status": WebhookDelivery.Status.PENDING},
            )
        if queued:
            enqueue(SEND_TASK)
    return len(queued), len(rows) - len(queued)
