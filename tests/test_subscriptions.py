"""Paid VIP plans: subscribe, remind, renew, grace, expire, cancel, change — once each."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError

from membership.models import AuditEntry, Cause, Member, TierHistory
from membership.services import evaluate_member
from subscriptions import services
from subscriptions.demo import create_demo_plans
from subscriptions.models import ChargeAttempt, SandboxCharge, Subscription
from tests.factories import MemberFactory, UserFactory

TAIPEI = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=TAIPEI)
DUE = dt.datetime(2026, 7, 1, 10, 0, tzinfo=TAIPEI)
State = Subscription.State


@pytest.fixture
def plans(demo):
    return {p.name: p for p in create_demo_plans()}


@pytest.fixture
def member(plans):
    with time_machine.travel(START, tick=False):
        m = MemberFactory(email="amy@example.com")
        evaluate_member(member_id=m.pk, cause=Cause.RECOMPUTE)
    return m


def subscribed(member, plan, token="tok_ok", card_after=None) -> Subscription:
    with time_machine.travel(START, tick=False):
        sub = services.subscribe(member=member, plan=plan, card_token=token)
    if card_after:
        Subscription.objects.filter(pk=sub.pk).update(card_token=card_after)
    return sub


def jobs_at(when: dt.datetime) -> dict:
    with time_machine.travel(when, tick=False):
        return services.run_jobs()


def tier(member) -> str:
    return Member.objects.select_related("tier").get(pk=member.pk).tier.name


def state(sub) -> str:
    return Subscription.objects.get(pk=sub.pk).state


def charged(sub) -> list[tuple[int, str]]:
    return list(
        ChargeAttempt.objects.filter(subscription=sub)
        .order_by("created_at", "attempt")
        .values_list("attempt", "result")
    )


def test_subscribing_charges_the_first_month_and_grants_the_plans_tier(plans, member):
    sub = subscribed(member, plans["基礎方案"])

    assert (state(sub), tier(member)) == (State.ACTIVE, "銀卡")
    assert Subscription.objects.get(pk=sub.pk).period_end == DUE
    assert charged(sub) == [(1, "succeeded")]


def test_a_declined_first_payment_subscribes_nothing(plans, member):
    with pytest.raises(ValidationError), time_machine.travel(START, tick=False):
        services.subscribe(member=member, plan=plans["基礎方案"], card_token="tok_decline")

    assert tier(member) == "一般會員"
    assert not Subscription.objects.exclude(state=State.EXPIRED).exists()


def test_a_reminder_goes_out_seven_days_before_renewal_once(plans, member, mailoutbox):
    subscribed(member, plans["基礎方案"])

    jobs_at(DUE - dt.timedelta(days=7))
    jobs_at(DUE - dt.timedelta(days=6))

    assert [m.subject for m in mailoutbox] == ["您的「基礎方案」將於 2026-07-01 自動續訂"]


def test_the_renewal_on_the_due_date_extends_the_period_and_runs_once(plans, member):
    sub = subscribed(member, plans["基礎方案"])

    first = jobs_at(DUE)
    second = jobs_at(DUE + dt.timedelta(minutes=30))

    assert (first["renewed"], second["renewed"]) == (1, 0)
    sub.refresh_from_db()
    assert (sub.state, sub.period_start, sub.period_end) == (
        State.ACTIVE,
        DUE,
        dt.datetime(2026, 8, 1, 10, 0, tzinfo=TAIPEI),
    )
    assert charged(sub) == [(1, "succeeded"), (1, "succeeded")]
    with time_machine.travel(DUE + dt.timedelta(days=3), tick=False):
        evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    assert tier(member) == "銀卡"


def test_a_renewal_failing_twice_then_succeeding_keeps_the_tier_throughout(
    plans, member, mailoutbox
):
    sub = subscribed(member, plans["基礎方案"], card_after="tok_fail_2_then_ok")

    jobs_at(DUE)
    assert (state(sub), tier(member)) == (State.PAST_DUE, "銀卡")
    jobs_at(DUE + dt.timedelta(days=1))
    assert state(sub) == State.PAST_DUE
    jobs_at(DUE + dt.timedelta(days=3))

    sub.refresh_from_db()
    assert (sub.state, sub.period_start, tier(member)) == (State.ACTIVE, DUE, "銀卡")
    assert [a for a in charged(sub) if a != (1, "succeeded")][:2] == [
        (1, "declined"),
        (2, "declined"),
    ]
    assert charged(sub)[-1] == (3, "succeeded")
    assert any("扣款未成功" in m.subject for m in mailoutbox)


def test_when_grace_runs_out_unpaid_the_member_drops_to_the_free_plan_and_earned_tier(
    plans, member, mailoutbox
):
    sub = subscribed(member, plans["進階方案"], card_after="tok_decline")

    for day in [0, 1, 3, 5]:
        jobs_at(DUE + dt.timedelta(days=day))
        assert tier(member) == "金卡"
    jobs_at(DUE + dt.timedelta(days=7))

    assert (state(sub), tier(member)) == (State.EXPIRED, "一般會員")
    assert services.current_plan(member)[0].name == "免費會員"
    assert TierHistory.objects.filter(
        member=member, to_tier__name="一般會員", cause="grant"
    ).exists()
    assert any("已結束" in m.subject for m in mailoutbox)
    assert len(charged(sub)) == 6  # the first month, then due day and days 1, 3, 5, 7


def test_cancelling_keeps_the_plan_until_the_period_ends_without_charging_again(plans, member):
    sub = subscribed(member, plans["基礎方案"])
    with time_machine.travel(START + dt.timedelta(days=10), tick=False):
        services.cancel(subscription=sub, reason="太貴")
    assert (state(sub), tier(member)) == (State.CANCELLING, "銀卡")

    jobs_at(DUE)

    assert (state(sub), tier(member)) == (State.EXPIRED, "一般會員")
    assert charged(sub) == [(1, "succeeded")]


def test_resuming_before_the_period_ends_renews_as_usual(plans, member):
    sub = subscribed(member, plans["基礎方案"])
    with time_machine.travel(START + dt.timedelta(days=10), tick=False):
        services.cancel(subscription=sub)
        services.resume(subscription=sub)

    jobs_at(DUE)

    assert state(sub) == State.ACTIVE
    assert len(charged(sub)) == 2


def test_a_plan_change_takes_effect_at_the_next_period(plans, member):
    sub = subscribed(member, plans["基礎方案"])
    with time_machine.travel(START + dt.timedelta(days=5), tick=False):
        services.change_plan(subscription=sub, plan=plans["進階方案"])
    assert tier(member) == "銀卡"

    jobs_at(DUE)

    assert tier(member) == "金卡"
    assert (
        ChargeAttempt.objects.filter(subscription=sub).order_by("-created_at").first().amount == 499
    )


def test_a_plan_change_after_a_cancel_records_the_state_it_left(plans, member):
    # given a subscription cancelled by its member
    sub = subscribed(member, plans["基礎方案"])
    staff = UserFactory()
    with time_machine.travel(START + dt.timedelta(days=5), tick=False):
        services.cancel(subscription=sub)

        # when the operator moves it to another paid plan
        services.change_plan(subscription=sub, plan=plans["進階方案"], actor=staff, reason="升級")

    # then the event and the audit entry read cancelling → active
    event = sub.events.get(kind="plan_change:進階方案")
    assert (event.from_state, event.to_state) == (State.CANCELLING, State.ACTIVE)
    entry = AuditEntry.objects.get(action="subscription.change_plan")
    assert (entry.before["state"], entry.after["state"]) == (State.CANCELLING, State.ACTIVE)


def test_a_gateway_timeout_followed_by_a_late_success_records_one_charge(plans, member, settings):
    settings.SUBSCRIPTION_ASK_AGAIN_AFTER = []  # the answer stays lost for this run
    sub = subscribed(member, plans["基礎方案"], card_after="tok_timeout_then_ok")

    jobs_at(DUE)
    assert (state(sub), tier(member)) == (State.ACTIVE, "銀卡")  # no answer yet
    jobs_at(DUE + dt.timedelta(hours=1, minutes=5))

    assert state(sub) == State.ACTIVE
    renewal = ChargeAttempt.objects.filter(subscription=sub, period_start=DUE)
    assert list(renewal.values_list("attempt", "result")) == [(1, "succeeded")]
    assert SandboxCharge.objects.filter(idempotency_key=renewal.get().idempotency_key).count() == 1


def test_running_every_job_twice_changes_nothing_the_second_time(plans, member):
    sub = subscribed(member, plans["基礎方案"], card_after="tok_decline")
    jobs_at(DUE)
    events = sub.events.count()

    again = jobs_at(DUE + dt.timedelta(minutes=1))

    assert again == {
        "reminders": 0,
        "ended": 0,
        "renewed": 0,
        "pending": 0,
        "past_due": 0,
        "expired": 0,
        "errors": 0,
    }
    assert sub.events.count() == events
    assert len(charged(sub)) == 2


def test_every_transition_is_a_history_row(plans, member):
    sub = subscribed(member, plans["基礎方案"], card_after="tok_decline")
    for day in [0, 1, 3, 5, 7]:
        jobs_at(DUE + dt.timedelta(days=day))

    assert list(sub.events.values_list("kind", "from_state", "to_state")) == [
        ("subscribed", "", "active"),
        ("payment_failed", "active", "past_due"),
        ("expired_unpaid", "past_due", "expired"),
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_renewal_runs_at_once_charge_the_period_once(plans, member):
    from tests.test_concurrency import run_together

    sub = subscribed(member, plans["基礎方案"])

    with time_machine.travel(DUE, tick=False):
        errors = run_together(*[lambda: services.renew(subscription_id=sub.pk)] * 4)

    assert errors == []
    assert charged(sub) == [(1, "succeeded"), (1, "succeeded")]
    assert SandboxCharge.objects.count() == 2
    assert state(sub) == State.ACTIVE


def test_cancelling_in_the_admin_needs_a_reason_and_is_audited(plans, member, client):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    from membership.models import AuditEntry
    from tests.factories import UserFactory

    sub = subscribed(member, plans["基礎方案"])
    staff = UserFactory()
    staff.user_permissions.set(
        Permission.objects.filter(codename__in=["view_subscription", "manage_subscription"])
    )
    client.force_login(staff)
    url = reverse("admin:subscriptions_subscription_changelist")
    post = {"action": "cancel_action", "_selected_action": [sub.pk]}

    client.post(url, {**post, "reason": ""})
    assert state(sub) == State.ACTIVE

    client.post(url, {**post, "reason": "客戶來電取消"})
    assert state(sub) == State.CANCELLING
    entry = AuditEntry.objects.get(action="subscription.cancel")
    assert (entry.actor, entry.reason) == (staff, "客戶來電取消")


def test_staff_without_the_subscription_permission_cannot_cancel(plans, member, client):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    from tests.factories import UserFactory

    sub = subscribed(member, plans["基礎方案"])
    staff = UserFactory()
    staff.user_permissions.set(Permission.objects.filter(codename="view_subscription"))
    client.force_login(staff)

    page = client.get(reverse("admin:subscriptions_subscription_changelist"))
    client.post(
        reverse("admin:subscriptions_subscription_changelist"),
        {"action": "cancel_action", "_selected_action": [sub.pk], "reason": "x"},
    )

    assert "cancel_action" not in page.content.decode()
    assert state(sub) == State.ACTIVE


def test_the_member_page_shows_the_subscription(plans, member, admin_client):
    from django.urls import reverse

    subscribed(member, plans["尊榮方案"])

    page = admin_client.get(reverse("admin:membership_member_change", args=[member.pk]))

    assert "尊榮方案" in page.content.decode()
