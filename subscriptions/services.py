"""The subscription lifecycle: an explicit state machine, renewals, grace and retries.

States: active → (period ends, charge fails) past_due → active | expired;
active → (cancel) cancelling → (resume) active | (period ends) expired.
Every transition is a SubscriptionEvent. A period is never charged twice: each try is
a ChargeAttempt whose key (subscription, period, attempt number) is also the
gateway's idempotency key, a unique constraint allows one success per period, and
the renewal job claims a subscription with a conditional UPDATE before charging.
Gateway calls happen outside database transactions.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.models import Cause, Member, TierGrant
from membership.services import evaluate_member, grant_tier, record_audit
from membership.services.rules import add_months

from .gateways import GatewayTimeout, get_gateway
from .models import ChargeAttempt, Plan, Subscription, SubscriptionEvent
from .notifications import notify

State = Subscription.State
CLAIM = dt.timedelta(minutes=5)
ASK_AGAIN = dt.timedelta(hours=1)


def _add_period(start: dt.datetime, plan: Plan) -> dt.datetime:
    local = timezone.localtime(start)
    day = add_months(local.date(), plan.months)
    return local.replace(year=day.year, month=day.month, day=day.day)


def _event(sub: Subscription, kind: str, old: str, *, actor=None, reason: str = "", now=None):
    SubscriptionEvent.objects.create(
        subscription=sub,
        kind=kind,
        from_state=old,
        to_state=sub.state,
        actor=actor if getattr(actor, "pk", None) else None,
        reason=reason,
        created_at=now or timezone.now(),
    )


def _grant(sub: Subscription, start: dt.datetime, end: dt.datetime, kind: str) -> None:
    if sub.plan.tier_id:
        grant_tier(
            member_id=sub.member_id,
            tier=sub.plan.tier,
            starts_at=start,
            ends_at=end,
            source=f"subscription-{kind}",
            source_ref=f"{sub.pk}:{start.isoformat()}",
        )


def _end_grants(sub: Subscription, now: dt.datetime) -> None:
    TierGrant.objects.filter(
        source__startswith="subscription-", source_ref__startswith=f"{sub.pk}:", ends_at__gt=now
    ).update(ends_at=now)
    evaluate_member(member_id=sub.member_id, cause=Cause.GRANT)


def _charge(sub: Subscription, period_start: dt.datetime, attempt: int, now) -> ChargeAttempt:
    """Ask the gateway for one attempt; asking again for the same attempt charges nothing new."""
    # The whole period-start instant: a key by date alone would let two periods share one.
    key = f"sub-{sub.pk}-{timezone.localtime(period_start):%Y%m%dT%H%M%S.%f}-{attempt}"
    row, _created = ChargeAttempt.objects.get_or_create(
        idempotency_key=key,
        defaults={
            "subscription": sub,
            "period_start": period_start,
            "attempt": attempt,
            "amount": sub.plan.price,
            "created_at": now,
        },
    )
    if (row.subscription_id, row.period_start, row.attempt) != (sub.pk, period_start, attempt):
        raise RuntimeError(f"idempotency key {key} already names another charge")
    if row.result != ChargeAttempt.Result.PENDING:
        return row
    try:
        outcome = get_gateway().charge(token=sub.card_token, amount=row.amount, idempotency_key=key)
    except GatewayTimeout:
        row.message = "gateway timeout: will ask again with the same key"
        row.save(update_fields=["message"])
        return row
    row.result = (
        ChargeAttempt.Result.SUCCEEDED if outcome.succeeded else ChargeAttempt.Result.DECLINED
    )
    row.gateway_reference, row.message, row.answered_at = outcome.reference, outcome.message, now
    row.save(update_fields=["result", "gateway_reference", "message", "answered_at"])
    return row


def subscribe(*, member: Member, plan: Plan, card_token: str, actor=None) -> Subscription:
    """Start a paid plan now: the first period is charged at once; a decline refuses."""
    if plan.is_free or plan.price == 0:
        raise ValidationError(_("The free plan needs no subscription."))
    now = timezone.now()
    try:
        with transaction.atomic():
            sub = Subscription.objects.create(
                member=member,
                plan=plan,
                card_token=card_token,
                period_start=now,
                period_end=_add_period(now, plan),
            )
    except IntegrityError as exc:
        raise ValidationError(
            _("%(name)s already has a subscription.") % {"name": member.name}
        ) from exc
    attempt = _charge(sub, now, 1, now)
    if attempt.result != ChargeAttempt.Result.SUCCEEDED:
        sub.state = State.EXPIRED
        sub.save(update_fields=["state"])
        _event(sub, "subscribe_failed", State.ACTIVE, actor=actor, reason=attempt.message, now=now)
        raise ValidationError(_("The first payment did not go through; nothing was subscribed."))
    with transaction.atomic():
        _event(sub, "subscribed", "", actor=actor, now=now)
        _grant(sub, now, sub.period_end, "period")
    return sub


def cancel(*, subscription: Subscription, actor=None, reason: str = "") -> Subscription:
    """Stop auto-renewal. The plan is kept until the period ends; in grace it ends now."""
    now = timezone.now()
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription.pk)
        old = sub.state
        if old == State.ACTIVE:
            sub.state = State.CANCELLING
        elif old == State.PAST_DUE:
            sub.state = State.EXPIRED
        else:
            raise ValidationError(_("Only an active or past-due subscription can be cancelled."))
        sub.save(update_fields=["state"])
        _event(sub, "cancelled", old, actor=actor, reason=reason, now=now)
        _audit(sub, actor, "subscription.cancel", old, reason)
        if sub.state == State.EXPIRED:
            _end_grants(sub, now)
    return sub


def resume(*, subscription: Subscription, actor=None, reason: str = "") -> Subscription:
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if sub.state != State.CANCELLING or sub.period_end <= timezone.now():
            raise ValidationError(_("Only a subscription cancelled at period end can be resumed."))
        sub.state = State.ACTIVE
        sub.save(update_fields=["state"])
        _event(sub, "resumed", State.CANCELLING, actor=actor, reason=reason)
        _audit(sub, actor, "subscription.resume", State.CANCELLING, reason)
    return sub


def change_plan(
    *, subscription: Subscription, plan: Plan, actor=None, reason: str = ""
) -> Subscription:
    """Switch plans from the next period on (no proration): charged and granted at renewal."""
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if sub.state not in (State.ACTIVE, State.CANCELLING):
            raise ValidationError(_("Only an active subscription can change plan."))
        sub.next_plan = None if plan.pk == sub.plan_id else plan
        sub.state = State.ACTIVE if not plan.is_free else State.CANCELLING
        sub.save(update_fields=["next_plan", "state"])
        _event(sub, f"plan_change:{plan.name}", sub.state, actor=actor, reason=reason)
        _audit(sub, actor, "subscription.change_plan", sub.state, reason)
    return sub


def retry_now(*, subscription: Subscription, actor, reason: str) -> Subscription:
    if subscription.state != State.PAST_DUE:
        raise ValidationError(_("Only a past-due subscription can be retried."))
    if not reason.strip():
        raise ValidationError({"reason": _("A reason is required.")})
    Subscription.objects.filter(pk=subscription.pk, state=State.PAST_DUE).update(
        next_attempt_at=timezone.now()
    )
    _audit(subscription, actor, "subscription.retry_now", subscription.state, reason)
    renew(subscription_id=subscription.pk)
    return Subscription.objects.get(pk=subscription.pk)


def _audit(sub, actor, action, old, reason):
    if getattr(actor, "pk", None):
        record_audit(
            actor=actor,
            action=action,
            obj=sub,
            before={"state": old},
            after={"state": sub.state, "plan": sub.plan.name},
            reason=reason,
        )


def renew(*, subscription_id: int, now: dt.datetime | None = None) -> str | None:
    """Charge the period that is due, once, and move the state machine on. Idempotent.

    Returns what happened, or None if nothing was due or another worker holds it.
    """
    now = now or timezone.now()
    claimed = (
        Subscription.objects.filter(pk=subscription_id)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .filter(
            Q(state=State.ACTIVE, period_end__lte=now)
            | Q(state=State.PAST_DUE, next_attempt_at__lte=now)
        )
        .update(claimed_until=now + CLAIM)
    )
    if not claimed:
        return None
    try:
        return _renew_claimed(
            Subscription.objects.select_related("plan").get(pk=subscription_id), now
        )
    finally:
        Subscription.objects.filter(pk=subscription_id).update(claimed_until=None)


def _renew_claimed(sub: Subscription, now: dt.datetime) -> str:
    if sub.next_plan_id and sub.state == State.ACTIVE:
        sub.plan, sub.next_plan = sub.next_plan, None
        sub.save(update_fields=["plan", "next_plan"])
    due = sub.period_end
    last = (
        ChargeAttempt.objects.filter(subscription=sub, period_start=due)
        .order_by("-attempt")
        .first()
    )
    if last is None or last.result == ChargeAttempt.Result.SUCCEEDED:
        number = 1 if last is None else last.attempt
    elif last.result == ChargeAttempt.Result.PENDING:
        number = last.attempt  # ask again with the same key: no second charge
    else:
        number = last.attempt + 1
    attempt = (
        last
        if last and last.result == ChargeAttempt.Result.SUCCEEDED
        else _charge(sub, due, number, now)
    )
    old = sub.state
    if attempt.result == ChargeAttempt.Result.SUCCEEDED:
        with transaction.atomic():
            sub.state, sub.grace_until, sub.next_attempt_at = State.ACTIVE, None, None
            sub.period_start, sub.period_end = due, _add_period(due, sub.plan)
            sub.save()
            _event(sub, "renewed", old, now=now)
            _grant(sub, due, sub.period_end, "period")
        return "renewed"
    retry_days = settings.SUBSCRIPTION_RETRY_DAYS
    grace_until = due + dt.timedelta(days=retry_days[-1])
    failed_tries = ChargeAttempt.objects.filter(
        subscription=sub, period_start=due, result=ChargeAttempt.Result.DECLINED
    ).count()
    if attempt.result == ChargeAttempt.Result.DECLINED and (
        failed_tries > len(retry_days) or now >= grace_until
    ):
        with transaction.atomic():
            sub.state, sub.next_attempt_at = State.EXPIRED, None
            sub.save(update_fields=["state", "next_attempt_at"])
            _event(sub, "expired_unpaid", old, now=now)
            _end_grants(sub, now)
        notify(sub, "expired")  # after the commit: the renewal runs outside any transaction
        return "expired"
    entering_grace = old != State.PAST_DUE
    with transaction.atomic():
        sub.state, sub.grace_until = State.PAST_DUE, grace_until
        if attempt.result == ChargeAttempt.Result.PENDING:
            sub.next_attempt_at = now + ASK_AGAIN
        else:
            later = [
                due + dt.timedelta(days=d) for d in retry_days if due + dt.timedelta(days=d) > now
            ]
            sub.next_attempt_at = later[0] if later else grace_until
        sub.save(update_fields=["state", "grace_until", "next_attempt_at"])
        if entering_grace:
            _event(sub, "payment_failed", old, reason=attempt.message, now=now)
            _grant(sub, due, grace_until, "grace")  # the tier is kept through the grace period
    if entering_grace:
        notify(sub, "payment_failed")
    return "past_due"


def expire_cancelled(*, now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    count = 0
    for sub_id in Subscription.objects.filter(
        state=State.CANCELLING, period_end__lte=now
    ).values_list("pk", flat=True):
        with transaction.atomic():
            if not Subscription.objects.filter(pk=sub_id, state=State.CANCELLING).update(
                state=State.EXPIRED
            ):
                continue  # another worker got here first
            sub = Subscription.objects.get(pk=sub_id)
            _event(sub, "ended", State.CANCELLING, now=now)
            _end_grants(sub, now)
            count += 1
    return count


def send_reminders(*, now: dt.datetime | None = None) -> int:
    """A reminder once per period, seven days before it renews."""
    now = now or timezone.now()
    soon = now + dt.timedelta(days=settings.SUBSCRIPTION_REMINDER_DAYS)
    sent = 0
    for sub in Subscription.objects.filter(
        state=State.ACTIVE, period_end__lte=soon, period_end__gt=now
    ).exclude(reminded_for=F("period_end")):
        if (
            Subscription.objects.filter(pk=sub.pk)
            .exclude(reminded_for=sub.period_end)
            .update(reminded_for=sub.period_end)
        ):
            notify(sub, "reminder")
            sent += 1
    return sent


def run_jobs(*, now: dt.datetime | None = None) -> dict:
    """The periodic job: reminders, ends of cancelled plans, renewals and retries."""
    now = now or timezone.now()
    result = {"reminders": send_reminders(now=now), "ended": expire_cancelled(now=now)}
    due = Subscription.objects.filter(
        Q(state=State.ACTIVE, period_end__lte=now)
        | Q(state=State.PAST_DUE, next_attempt_at__lte=now)
    ).values_list("pk", flat=True)
    outcomes = [renew(subscription_id=pk, now=now) for pk in list(due)]
    for kind in ("renewed", "past_due", "expired"):
        result[kind] = outcomes.count(kind)
    return result


def current_plan(member: Member) -> tuple[Plan | None, Subscription | None]:
    """The member's live subscription and its plan, or the free plan."""
    sub = (
        Subscription.objects.select_related("plan")
        .filter(member=member)
        .exclude(state=State.EXPIRED)
        .first()
    )
    return (sub.plan, sub) if sub else (free_plan(), None)


def free_plan() -> Plan | None:
    """The free plan, cached for a minute: nearly every member page shows it."""
    from django.core.cache import cache

    return cache.get_or_set("subscriptions:free-plan", _free_plan, 60)


def _free_plan() -> Plan | None:
    return Plan.objects.filter(is_free=True).first()
