"""The subscription lifecycle: an explicit state machine, renewals, grace and retries.

States: pending (first payment unanswered) → active | expired;
active → (period ends, charge fails) past_due → active | expired;
active → (cancel) cancelling → (resume) active | (period ends) expired.
Every transition is a SubscriptionEvent. A period is never charged twice: each try is
a ChargeAttempt whose key (subscription, period, attempt number) is also the
gateway's idempotency key, a unique constraint allows one success per period, and
the renewal job claims a subscription with a conditional UPDATE before charging.
Gateway calls happen outside database transactions.

Faults: a lost answer (a timeout, or any error the gateway raises) is asked again with
the same key before anything is decided or anyone is told; an attempt still unanswered
stays pending and the sweeper (settle_pending_charges) asks again on every run, until
SUBSCRIPTION_ANSWER_HOURS have passed and it counts as not paid.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from api.webhooks import events as webhooks
from membership.models import Member
from membership.services import grant_tier, record_audit
from membership.services.grants import end_tier_grants
from membership.services.rules import add_months_local

from .gateways import GatewayTimeout, get_gateway
from .models import ChargeAttempt, Plan, Subscription, SubscriptionEvent
from .notifications import notify

logger = logging.getLogger(__name__)
State = Subscription.State
Result = ChargeAttempt.Result
CLAIM = dt.timedelta(minutes=5)
ASK_AGAIN = dt.timedelta(hours=1)
UNANSWERED = "no answer from the gateway by the deadline: counted as not paid"
NOT_CHARGED = "stopped before the first charge was made: nothing was charged"


def _add_period(start: dt.datetime, plan: Plan) -> dt.datetime:
    return add_months_local(start, plan.months)


def _event(sub: Subscription, kind: str, old: str, *, actor=None, reason: str = "", now=None):
    event = SubscriptionEvent.objects.create(
        subscription=sub,
        kind=kind,
        from_state=old,
        to_state=sub.state,
        actor=actor if getattr(actor, "pk", None) else None,
        reason=reason,
        created_at=now or timezone.now(),
    )
    webhooks.subscription_event_recorded(event=event)


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
    end_tier_grants(
        member_id=sub.member_id,
        source_prefix="subscription-",
        ref_prefix=f"{sub.pk}:",
        at=now,
    )


def _charge(sub: Subscription, period_start: dt.datetime, attempt: int, now) -> ChargeAttempt:
    """Charge one attempt, or learn how the charge of that attempt went. Never charges twice.

    The attempt's key is the gateway's idempotency key: asking again for the same attempt
    charges nothing new and returns the first answer. An attempt still without an answer
    after asking again is returned pending; the sweeper asks again later.
    """
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
    return _ask_gateway(sub, row, now)


def _ask_gateway(sub: Subscription, row: ChargeAttempt, now) -> ChargeAttempt:
    """Ask the gateway about a pending attempt, asking again with the same key while no
    answer comes, and record the answer. An answered attempt is returned as it is."""
    if row.result != Result.PENDING:
        return row
    outcome = None
    for wait in (0, *settings.SUBSCRIPTION_ASK_AGAIN_AFTER):
        time.sleep(wait)
        try:
            outcome = get_gateway().charge(
                token=sub.card_token, amount=row.amount, idempotency_key=row.idempotency_key
            )
            break
        except GatewayTimeout:
            message = "gateway timeout: no answer; will ask again with the same key"
        except Exception as exc:  # noqa: BLE001 - any other gateway error is no answer either
            logger.exception("charge %s: the gateway raised an error", row.idempotency_key)
            message = f"gateway error ({type(exc).__name__}): will ask again with the same key"
    if outcome is None:
        if row.created_at <= now - dt.timedelta(hours=settings.SUBSCRIPTION_ANSWER_HOURS):
            return _record_answer(row, Result.DECLINED, "", UNANSWERED, now)
        ChargeAttempt.objects.filter(pk=row.pk, result=Result.PENDING).update(message=message)
        row.message = message
        return row
    result = Result.SUCCEEDED if outcome.succeeded else Result.DECLINED
    return _record_answer(row, result, outcome.reference, outcome.message, now)


def _record_answer(row: ChargeAttempt, result: str, reference: str, message: str, now):
    """Write the gateway's answer once; whoever recorded it first wins, the others read it."""
    ChargeAttempt.objects.filter(pk=row.pk, result=Result.PENDING).update(
        result=result, gateway_reference=reference, message=message[:200], answered_at=now
    )
    row.refresh_from_db()
    return row


def subscribe(*, member: Member, plan: Plan, card_token: str, actor=None) -> Subscription:
    """Start a paid plan now: the first period is charged at once; a decline refuses.

    A lost answer is asked again (same key) before anything is decided. If the gateway
    still does not answer, the subscription is returned pending (it holds the member's
    one live subscription, so nobody is charged twice) and the sweeper settles it.
    """
    if plan.is_free or plan.price == 0:
        raise ValidationError(_("The free plan needs no subscription."))
    now = timezone.now()
    try:
        with transaction.atomic():
            sub = Subscription.objects.create(
                member=member,
                plan=plan,
                card_token=card_token,
                state=State.PENDING,
                period_start=now,
                period_end=_add_period(now, plan),
                claimed_until=now + CLAIM,  # the sweeper leaves it alone while we charge
            )
    except IntegrityError as exc:
        raise ValidationError(
            _("%(name)s already has a subscription.") % {"name": member.name}
        ) from exc
    try:
        attempt = _charge(sub, now, 1, now)
        if attempt.result == Result.PENDING:
            _event(sub, "payment_pending", "", actor=actor, reason=attempt.message, now=now)
            return sub
        sub = _settle_first_payment(sub, attempt, now, actor=actor, old="")
    finally:
        _release(sub.pk)
    if sub.state == State.EXPIRED:
        raise ValidationError(_("The first payment did not go through; nothing was subscribed."))
    return sub


def _settle_first_payment(
    sub: Subscription, attempt: ChargeAttempt, now: dt.datetime, *, actor=None, old: str
) -> Subscription:
    """Move a pending subscription on by its first charge's answer; unanswered, it waits.

    ``old`` is the state the history shows it leaving: "" when the answer came at once.
    """
    if attempt.result == Result.PENDING:
        return sub
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().select_related("plan").get(pk=sub.pk)
        if sub.state != State.PENDING:
            return sub  # settled already
        if attempt.result == Result.SUCCEEDED:
            sub.state = State.ACTIVE
            sub.save(update_fields=["state"])
            _event(sub, "subscribed", old, actor=actor, now=now)
            _grant(sub, sub.period_start, sub.period_end, "period")
        else:
            sub.state = State.EXPIRED
            sub.save(update_fields=["state"])
            _event(sub, "subscribe_failed", old, actor=actor, reason=attempt.message, now=now)
    return sub


def cancel(*, subscription: Subscription, actor=None, reason: str = "") -> Subscription:
    """Stop auto-renewal. The plan is kept until the period ends; in grace it ends now.

    Refused while a charge waits for the gateway's answer: a success arriving after the
    plan ended would be a payment for nothing.
    """
    now = timezone.now()
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if sub.attempts.filter(result=Result.PENDING).exists():
            raise ValidationError(
                _(
                    "A payment of this subscription is waiting for the gateway's answer; "
                    "cancel it once the payment is settled."
                )
            )
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
        old = sub.state
        sub.next_plan = None if plan.pk == sub.plan_id else plan
        sub.state = State.ACTIVE if not plan.is_free else State.CANCELLING
        sub.save(update_fields=["next_plan", "state"])
        _event(sub, f"plan_change:{plan.name}", old, actor=actor, reason=reason)
        _audit(sub, actor, "subscription.change_plan", old, reason)
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


def _claim(subscription_id: int, now: dt.datetime, *, due_only: bool) -> bool:
    """Claim a subscription for CLAIM with one conditional UPDATE: one worker at a time.

    A claim left by a worker that died runs out by itself.
    """
    rows = Subscription.objects.filter(pk=subscription_id).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    if due_only:
        rows = rows.filter(_due(now))
    return bool(rows.update(claimed_until=now + CLAIM))


def _due(now: dt.datetime) -> Q:
    """Subscriptions to charge now: a period ended, or a retry (or a question again) due."""
    active = Q(state=State.ACTIVE, period_end__lte=now) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    return active | Q(state=State.PAST_DUE, next_attempt_at__lte=now)


def _release(subscription_id: int) -> None:
    Subscription.objects.filter(pk=subscription_id).update(claimed_until=None)


def renew(*, subscription_id: int, now: dt.datetime | None = None) -> str | None:
    """Charge the period that is due, once, and move the state machine on. Idempotent.

    Returns what happened, or None if nothing was due or another worker holds it. The
    gateway is asked outside any transaction; the state moves in one transaction after.
    """
    now = now or timezone.now()
    if not _claim(subscription_id, now, due_only=True):
        return None
    try:
        return _renew_claimed(
            Subscription.objects.select_related("plan").get(pk=subscription_id), now
        )
    finally:
        _release(subscription_id)


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
    if last is None or last.result == Result.SUCCEEDED:
        number = 1 if last is None else last.attempt
    elif last.result == Result.PENDING:
        number = last.attempt  # ask again with the same key: no second charge
    else:
        number = last.attempt + 1
    attempt = last if last and last.result == Result.SUCCEEDED else _charge(sub, due, number, now)
    return _after_renewal_charge(sub, attempt, now)


def _after_renewal_charge(sub: Subscription, attempt: ChargeAttempt, now: dt.datetime) -> str:
    """Move a claimed subscription on by the answer about its due period's charge."""
    due = sub.period_end
    old = sub.state
    if attempt.result == Result.SUCCEEDED:
        with transaction.atomic():
            sub.state, sub.grace_until, sub.next_attempt_at = State.ACTIVE, None, None
            sub.period_start, sub.period_end = due, _add_period(due, sub.plan)
            sub.save()
            _event(sub, "renewed", old, now=now)
            _grant(sub, due, sub.period_end, "period")
        return "renewed"
    retry_days = settings.SUBSCRIPTION_RETRY_DAYS
    grace_until = due + dt.timedelta(days=retry_days[-1])
    if attempt.result == Result.PENDING:
        # No answer even when asked again: nobody is told anything yet. The state stays,
        # the tier is kept as through a grace period, and the same key is asked again.
        with transaction.atomic():
            sub.next_attempt_at = now + ASK_AGAIN
            sub.save(update_fields=["next_attempt_at"])
            _grant(sub, due, grace_until, "grace")
        return "pending"
    failed_tries = ChargeAttempt.objects.filter(
        subscription=sub, period_start=due, result=Result.DECLINED
    ).count()
    if attempt.result == Result.DECLINED and (failed_tries > len(retry_days) or now >= grace_until):
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
        later = [due + dt.timedelta(days=d) for d in retry_days if due + dt.timedelta(days=d) > now]
        sub.next_attempt_at = later[0] if later else grace_until
        sub.save(update_fields=["state", "grace_until", "next_attempt_at"])
        if entering_grace:
            _event(sub, "payment_failed", old, reason=attempt.message, now=now)
            _grant(sub, due, grace_until, "grace")  # the tier is kept through the grace period
    if entering_grace:
        notify(sub, "payment_failed")
    return "past_due"


def settle_pending_charges(*, now: dt.datetime | None = None) -> dict[str, int]:
    """The sweeper: ask the gateway again about every charge attempt left pending.

    Each is asked with its own key, so nothing is charged twice. A success pays its
    period once (a pending first payment becomes the subscription; a pending renewal
    renews); a decline fails as a declined charge would have; still no answer waits for
    the next sweep, until SUBSCRIPTION_ANSWER_HOURS have passed and it counts as not
    paid. A pending subscription whose first charge was never even written (its worker
    died first) ends, nothing charged. A subscription another worker holds is left for
    the next sweep; one failure does not stop the others. Returns how many attempts
    ended succeeded, declined or still pending, and how many subscriptions ended
    not charged.
    """
    now = now or timezone.now()
    counts = {"succeeded": 0, "declined": 0, "pending": 0, "not_charged": 0, "errors": 0}
    waiting = set(
        ChargeAttempt.objects.filter(result=Result.PENDING).values_list(
            "subscription_id", flat=True
        )
    ) | set(Subscription.objects.filter(state=State.PENDING).values_list("pk", flat=True))
    for subscription_id in sorted(waiting):
        try:
            for result in _settle_subscription(subscription_id, now):
                counts[result] += 1
        except Exception:
            logger.exception("settling the charges of subscription %s failed", subscription_id)
            counts["errors"] += 1
    return counts


def _settle_subscription(subscription_id: int, now: dt.datetime) -> list[str]:
    if not _claim(subscription_id, now, due_only=False):
        return []  # being charged right now: the next sweep looks again
    try:
        sub = Subscription.objects.select_related("plan").get(pk=subscription_id)
        results = []
        for row in ChargeAttempt.objects.filter(subscription=sub, result=Result.PENDING).order_by(
            "period_start", "attempt"
        ):
            attempt = _ask_gateway(sub, row, now)
            results.append(attempt.result)
            if sub.state == State.PENDING:
                sub = _settle_first_payment(sub, attempt, now, old=State.PENDING)
            elif sub.state in (State.ACTIVE, State.PAST_DUE) and row.period_start == sub.period_end:
                _after_renewal_charge(sub, attempt, now)
            # else: the period is no longer due (ended, cancelled): the answer is recorded.
        if sub.state == State.PENDING and not sub.attempts.exists():
            _end_uncharged(sub, now)
            results.append("not_charged")
        return results
    finally:
        _release(subscription_id)


def _end_uncharged(sub: Subscription, now: dt.datetime) -> None:
    """End a pending subscription whose first charge was never written: nothing was paid."""
    with transaction.atomic():
        if Subscription.objects.filter(pk=sub.pk, state=State.PENDING).update(state=State.EXPIRED):
            sub.state = State.EXPIRED
            _event(sub, "subscribe_failed", State.PENDING, reason=NOT_CHARGED, now=now)


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
    """The periodic job: reminders, ends of cancelled plans, renewals and retries.

    Each subscription renews on its own: an error renewing one is logged, counted under
    "errors" and does not stop the others; the next run tries it again.
    """
    now = now or timezone.now()
    result = {"reminders": send_reminders(now=now), "ended": expire_cancelled(now=now)}
    due = Subscription.objects.filter(_due(now)).values_list("pk", flat=True)
    outcomes = []
    for pk in list(due):
        try:
            outcomes.append(renew(subscription_id=pk, now=now))
        except Exception:
            logger.exception("renewing subscription %s failed", pk)
            outcomes.append("errors")
    for kind in ("renewed", "pending", "past_due", "expired", "errors"):
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
