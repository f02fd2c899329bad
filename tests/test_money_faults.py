"""Money faults and hostile input (issue 12): lost gateway answers, a gateway that raises,
racing redemptions, points beyond the ledger's bounds, business IDs in other digits."""

import datetime as dt
import uuid

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse

from b2b.models import Enterprise
from b2b.validators import is_valid_business_id, validate_business_id
from membership.models import Cause, Member
from membership.services import evaluate_member
from points.models import Account, Entry, Reward
from points.rewards import redeem_reward
from points.services import earn
from subscriptions import services
from subscriptions.demo import create_demo_plans
from subscriptions.models import ChargeAttempt, SandboxCharge, Subscription
from tests.factories import MemberFactory, UserFactory

TAIPEI = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=TAIPEI)
DUE = dt.datetime(2026, 7, 1, 10, 0, tzinfo=TAIPEI)
State = Subscription.State
LEDGER_MAX = 2**63 - 1


@pytest.fixture
def plans(demo):
    return {p.name: p for p in create_demo_plans()}


@pytest.fixture(autouse=True)
def _asking_again_without_waiting(settings):
    settings.SUBSCRIPTION_ASK_AGAIN_AFTER = [0, 0]


def new_member() -> Member:
    with time_machine.travel(START, tick=False):
        member = MemberFactory(email="amy@example.com")
        evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    return member


def subscribe(member, plan, token) -> Subscription:
    with time_machine.travel(START, tick=False):
        return services.subscribe(member=member, plan=plan, card_token=token)


def sweep_at(when: dt.datetime) -> dict:
    with time_machine.travel(when, tick=False):
        return services.settle_pending_charges()


def jobs_at(when: dt.datetime) -> dict:
    with time_machine.travel(when, tick=False):
        return services.run_jobs()


def tier(member) -> str:
    return Member.objects.select_related("tier").get(pk=member.pk).tier.name


def state(sub) -> str:
    return Subscription.objects.get(pk=sub.pk).state


def attempts(sub, period_start=START) -> list[tuple[int, str]]:
    return list(
        ChargeAttempt.objects.filter(subscription=sub, period_start=period_start)
        .order_by("attempt")
        .values_list("attempt", "result")
    )


# Subscribing when the gateway's answer is lost


def test_subscribing_when_the_first_answer_is_lost_asks_again_and_charges_once(plans):
    # given: a card whose first charge goes through but whose answer is lost
    member = new_member()

    # when
    sub = subscribe(member, plans["基礎方案"], "tok_timeout_then_ok")

    # then: asked again with the same key, the member is subscribed and charged once
    assert (state(sub), tier(member)) == (State.ACTIVE, "銀卡")
    assert attempts(sub) == [(1, "succeeded")]
    assert SandboxCharge.objects.count() == 1


def test_a_first_payment_still_unanswered_leaves_the_subscription_pending_without_a_tier(plans):
    # given: a gateway that never answers
    member = new_member()

    # when
    sub = subscribe(member, plans["基礎方案"], "tok_timeout")

    # then
    assert (state(sub), tier(member)) == (State.PENDING, "一般會員")
    assert attempts(sub) == [(1, "pending")]
    assert list(sub.events.values_list("kind", "to_state")) == [("payment_pending", "pending")]


def test_subscribing_again_while_the_first_payment_is_unanswered_is_refused_and_charges_nothing(
    plans,
):
    # given: a subscription whose first payment has no answer yet
    member = new_member()
    subscribe(member, plans["基礎方案"], "tok_timeout")

    # when: the member tries again
    with pytest.raises(ValidationError):
        subscribe(member, plans["基礎方案"], "tok_ok")

    # then
    assert Subscription.objects.filter(member=member).count() == 1
    assert SandboxCharge.objects.count() == 0


# The sweeper


def test_the_sweeper_settles_a_first_payment_whose_answer_was_lost_and_subscribes_once(
    plans, settings
):
    # given: the answer stays lost while the member waits
    settings.SUBSCRIPTION_ASK_AGAIN_AFTER = []
    member = new_member()
    sub = subscribe(member, plans["基礎方案"], "tok_timeout_then_ok")
    assert state(sub) == State.PENDING

    # when: the sweeper runs twice
    first = sweep_at(START + dt.timedelta(minutes=5))
    second = sweep_at(START + dt.timedelta(minutes=10))

    # then: one charge, the period paid once, the tier granted
    assert (first["succeeded"], second["succeeded"]) == (1, 0)
    assert (state(sub), tier(member)) == (State.ACTIVE, "銀卡")
    assert Subscription.objects.get(pk=sub.pk).period_end == DUE
    assert attempts(sub) == [(1, "succeeded")]
    assert SandboxCharge.objects.count() == 1
    assert list(sub.events.values_list("kind", "from_state", "to_state")) == [
        ("payment_pending", "", "pending"),
        ("subscribed", "pending", "active"),
    ]


def test_the_sweeper_fails_a_first_payment_the_gateway_declined(plans, settings):
    # given
    settings.SUBSCRIPTION_ASK_AGAIN_AFTER = []
    member = new_member()
    sub = subscribe(member, plans["基礎方案"], "tok_timeout_then_decline")

    # when
    sweep_at(START + dt.timedelta(minutes=5))

    # then: nothing subscribed, the member may subscribe again
    assert (state(sub), tier(member)) == (State.EXPIRED, "一般會員")
    assert attempts(sub) == [(1, "declined")]
    assert subscribe(member, plans["基礎方案"], "tok_ok").state == State.ACTIVE


def test_a_renewal_whose_answer_is_lost_tells_the_member_nothing_and_keeps_the_tier(
    plans, settings, mailoutbox
):
    # given: a renewal charged, its answer lost for the whole run
    settings.SUBSCRIPTION_ASK_AGAIN_AFTER = []
    member = new_member()
    sub = subscribe(member, plans["基礎方案"], "tok_ok")
    Subscription.objects.filter(pk=sub.pk).update(card_token="tok_timeout_then_ok")

    # when
    result = jobs_at(DUE)

    # then
    assert result["pending"] == 1
    assert attempts(sub, DUE) == [(1, "pending")]
    assert (state(sub), tier(member)) == (State.ACTIVE, "銀卡")
    assert mailoutbox == []
    assert not sub.events.filter(kind="payment_failed").exists()


def test_the_sweeper_settles_a_renewal_whose_answer_was_lost(plans, settings):
    # given: a renewal charged, its answer lost for the whole run
    settings.SUBSCRIPTION_ASK_AGAIN_AFTER = []
    member = new_member()
    sub = subscribe(member, plans["基礎方案"], "tok_ok")
    Subscription.objects.filter(pk=sub.pk).update(card_token="tok_timeout_then_ok")
    jobs_at(DUE)

    # when
    sweep_at(DUE + dt.timedelta(minutes=5))

    # then: renewed once, the period charged once
    renewed = Subscription.objects.get(pk=sub.pk)
    assert (renewed.state, renewed.period_start) == (State.ACTIVE, DUE)
    assert attempts(sub, DUE) == [(1, "succeeded")]
    assert SandboxCharge.objects.filter(amount=199).count() == 2  # subscribing and renewing


def test_a_renewal_declined_after_a_lost_answer_opens_the_grace_period_and_tells_the_member_once(
    plans, settings, mailoutbox
):
    # given: a renewal declined, the decline's answer lost for the whole run
    settings.SUBSCRIPTION_ASK_AGAIN_AFTER = []
    member = new_member()
    sub = subscribe(member, plans["基礎方案"], "tok_ok")
    Subscription.objects.filter(pk=sub.pk).update(card_token="tok_timeout_then_decline")
    jobs_at(DUE)

    # when
    sweep_at(DUE + dt.timedelta(minutes=5))
    sweep_at(DUE + dt.timedelta(minutes=10))

    # then
    assert (state(sub), tier(member)) == (State.PAST_DUE, "銀卡")
    assert attempts(sub, DUE) == [(1, "declined")]
    assert sub.events.filter(kind="payment_failed").count() == 1
    assert len(mailoutbox) == 1


def test_an_attempt_unanswered_past_the_deadline_counts_as_not_paid(plans, settings):
    # given: a gateway that never answers
    member = new_member()
    sub = subscribe(member, plans["基礎方案"], "tok_timeout")
    sweep_at(START + dt.timedelta(hours=1))
    assert state(sub) == State.PENDING

    # when
    sweep_at(START + dt.timedelta(hours=settings.SUBSCRIPTION_ANSWER_HOURS, minutes=1))

    # then
    attempt = ChargeAttempt.objects.get(subscription=sub)
    assert (attempt.result, attempt.message) == ("declined", services.UNANSWERED)
    assert (state(sub), tier(member)) == (State.EXPIRED, "一般會員")


def test_the_sweeper_leaves_alone_a_subscription_another_worker_is_charging(plans):
    # given: a pending first payment whose subscription is claimed by a worker
    member = new_member()
    sub = subscribe(member, plans["基礎方案"], "tok_timeout")
    Subscription.objects.filter(pk=sub.pk).update(claimed_until=START + dt.timedelta(minutes=10))

    # when
    result = sweep_at(START + dt.timedelta(minutes=5))

    # then
    assert result == {"succeeded": 0, "declined": 0, "pending": 0, "not_charged": 0, "errors": 0}
    assert attempts(sub) == [(1, "pending")]


def test_beat_runs_the_sweeper_as_a_task(plans, settings):
    from config.celery import app

    # given: a first payment whose answer was lost
    settings.SUBSCRIPTION_ASK_AGAIN_AFTER = []
    sub = subscribe(new_member(), plans["基礎方案"], "tok_timeout_then_ok")
    entry = settings.CELERY_BEAT_SCHEDULE["settle-pending-charges"]

    # when: the task beat names runs
    with time_machine.travel(START + dt.timedelta(minutes=5), tick=False):
        app.loader.import_default_modules()  # what a worker does at start-up
        app.tasks[entry["task"]].delay().get()

    # then
    assert state(sub) == State.ACTIVE


def test_the_sweeper_ends_a_pending_subscription_whose_first_charge_was_never_made(plans):
    # given: subscribing stopped (a killed worker) after the subscription was written
    member = new_member()
    sub = Subscription.objects.create(
        member=member,
        plan=plans["基礎方案"],
        card_token="tok_ok",
        state=State.PENDING,
        period_start=START,
        period_end=DUE,
    )

    # when
    result = sweep_at(START + dt.timedelta(minutes=10))

    # then: nothing charged, nothing subscribed, the member free to subscribe again
    assert result["not_charged"] == 1
    assert (state(sub), tier(member)) == (State.EXPIRED, "一般會員")
    assert SandboxCharge.objects.count() == 0
    assert list(sub.events.values_list("kind", flat=True)) == ["subscribe_failed"]


def test_cancelling_while_a_renewal_waits_for_the_gateways_answer_is_refused_in_the_admin(
    plans, settings, client
):
    from django.contrib.auth.models import Permission

    # given: a renewal whose answer is lost
    settings.SUBSCRIPTION_ASK_AGAIN_AFTER = []
    sub = subscribe(new_member(), plans["基礎方案"], "tok_ok")
    Subscription.objects.filter(pk=sub.pk).update(card_token="tok_timeout_then_ok")
    jobs_at(DUE)
    staff = UserFactory()
    staff.user_permissions.set(
        Permission.objects.filter(codename__in=["view_subscription", "manage_subscription"])
    )
    client.force_login(staff)

    # when
    with time_machine.travel(DUE + dt.timedelta(minutes=1), tick=False):
        response = client.post(
            reverse("admin:subscriptions_subscription_changelist"),
            {"action": "cancel_action", "_selected_action": [sub.pk], "reason": "客戶來電取消"},
            follow=True,
        )

    # then
    assert "付款正在等待金流回覆" in response.content.decode()
    assert state(sub) == State.ACTIVE


# Renewals: one failure never stops the others


def subscribed_members(plans, tokens_at_renewal: list[str]) -> list[Subscription]:
    """Subscriptions whose cards answer these tokens at renewal, the first the newest.

    The renewal job takes the newest first, so the first in the list is renewed first.
    """
    subs = []
    for newer, token in enumerate(reversed(tokens_at_renewal)):
        sub = subscribe(new_member(), plans["基礎方案"], "tok_ok")
        Subscription.objects.filter(pk=sub.pk).update(
            card_token=token, created_at=START + dt.timedelta(seconds=newer)
        )
        subs.insert(0, sub)
    return subs


def test_a_gateway_raising_for_one_subscription_does_not_stop_four_others(plans):
    # given: five renewals due; the gateway raises an unexpected error on the first in line
    subs = subscribed_members(plans, ["tok_error", *["tok_ok"] * 4])

    # when
    result = jobs_at(DUE)

    # then
    assert (result["renewed"], result["pending"], result["errors"]) == (4, 1, 0)
    periods = [Subscription.objects.get(pk=s.pk).period_start for s in subs]
    assert periods == [START, *[DUE] * 4]
    failed = ChargeAttempt.objects.get(subscription=subs[0], period_start=DUE)
    assert failed.result == "pending"  # no answer: asked again with the same key
    assert "SandboxError" in failed.message


def test_an_unknown_gateway_error_is_retried_with_the_same_key(plans):
    # given: a renewal whose charge raised an unknown error
    (sub,) = subscribed_members(plans, ["tok_error"])
    jobs_at(DUE)

    # when: the gateway works again by the next try
    Subscription.objects.filter(pk=sub.pk).update(card_token="tok_ok")
    jobs_at(DUE + dt.timedelta(hours=1, minutes=5))

    # then: the same attempt answered, the period paid once
    assert state(sub) == State.ACTIVE
    assert attempts(sub, DUE) == [(1, "succeeded")]


def test_an_unexpected_error_renewing_one_subscription_is_counted_and_the_others_renew(
    plans, monkeypatch
):
    # given: five renewals due; recording the first one's new period fails once
    subs = subscribed_members(plans, ["tok_ok"] * 5)
    real_grant = services._grant

    def grant(sub, start, end, kind):
        if sub.pk == subs[0].pk:
            raise RuntimeError("the tier grant failed")
        real_grant(sub, start, end, kind)

    monkeypatch.setattr(services, "_grant", grant)

    # when
    result = jobs_at(DUE)
    monkeypatch.setattr(services, "_grant", real_grant)
    again = jobs_at(DUE + dt.timedelta(minutes=1))

    # then: the others renewed at once; the first on the next run, without a second charge
    assert (result["renewed"], result["errors"]) == (4, 1)
    assert again["renewed"] == 1
    assert all(state(s) == State.ACTIVE for s in subs)
    assert attempts(subs[0], DUE) == [(1, "succeeded")]


# Redemptions: one key, one item of stock


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_redemption_sent_ten_times_at_once_redeems_once_and_takes_one_item(demo):
    from tests.test_concurrency import run_together

    # given
    member = MemberFactory()
    evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    earn(member_id=member.pk, points=500, source="test", source_ref="seed", key="seed")
    mug = Reward.objects.create(name="馬克杯", points_cost=100, stock=20)

    # when
    errors = run_together(
        *[lambda: redeem_reward(member_id=member.pk, reward=mug, key="mug:order-1")] * 10
    )

    # then
    assert errors == []
    assert Entry.objects.filter(kind="redeem").count() == 1
    assert Reward.objects.get(pk=mug.pk).stock == 19
    assert Account.objects.get(member=member).balance == 400


# The points adjustment form


@pytest.fixture
def adjuster(client, demo):
    from django.contrib.auth.models import Permission

    clerk = UserFactory()
    clerk.user_permissions.set(
        Permission.objects.filter(codename__in=["adjust_points", "view_member"])
    )
    client.force_login(clerk)
    member = MemberFactory()
    evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    return member


def post_adjustment(client, member, points, token=None):
    return client.post(
        reverse("admin:points_member_adjust", args=[member.pk]),
        {"points": points, "reason": "補點", "token": token or str(uuid.uuid4())},
        HTTP_ACCEPT_LANGUAGE="en",
    )


@pytest.mark.usefixtures("english")
def test_an_adjustment_beyond_the_ledgers_bounds_is_a_form_error(client, adjuster):
    # when
    response = post_adjustment(client, adjuster, 10**20)

    # then
    assert response.status_code == 200
    assert f"less than or equal to {LEDGER_MAX}" in response.content.decode()
    assert not Entry.objects.exists()


@pytest.mark.usefixtures("english")
def test_an_adjustment_that_would_take_the_balance_past_the_ledgers_bounds_is_a_form_error(
    client, adjuster
):
    # given
    earn(member_id=adjuster.pk, points=100, source="test", source_ref="seed", key="seed")

    # when
    response = post_adjustment(client, adjuster, LEDGER_MAX - 50)

    # then
    assert response.status_code == 200
    assert f"at most {LEDGER_MAX - 100} points" in response.content.decode()
    assert Account.objects.get(member=adjuster).balance == 100


@pytest.mark.usefixtures("english")
def test_a_bad_token_on_the_points_form_re_renders_with_a_message_and_a_new_token(client, adjuster):
    # when
    response = post_adjustment(client, adjuster, 50, token="not-a-token")

    # then: a message, nothing adjusted, and the form can be saved again as it is
    page = response.content.decode()
    assert response.status_code == 200
    assert "This form was out of date or changed on the way" in page
    assert not Entry.objects.exists()
    assert 'value="not-a-token"' not in page
    new_token = response.context["form"].data["token"]
    assert post_adjustment(client, adjuster, 50, token=new_token).status_code == 302
    assert Account.objects.get(member=adjuster).balance == 50


@pytest.mark.usefixtures("english")
def test_points_that_are_not_a_whole_number_are_a_form_error(client, adjuster):
    # when
    response = post_adjustment(client, adjuster, "1e5")

    # then
    assert response.status_code == 200
    assert "Enter a whole number." in response.content.decode()
    assert not Entry.objects.exists()


# 統一編號: ASCII digits only


@pytest.mark.parametrize(
    "business_id",
    [
        "２２０９９１３１",  # full-width
        "٢٢٠٩٩١٣١",  # Arabic-Indic
        "۲۲۰۹۹۱۳۱",  # Extended Arabic-Indic (Persian)
        "²2099131",  # a superscript two
        "2209913１",  # one full-width digit among ASCII ones
        "22099131\n",
        " 22099131",
    ],
)
def test_a_business_id_in_anything_but_ascii_digits_is_refused(business_id):
    assert is_valid_business_id(business_id) is False
    with pytest.raises(ValidationError):
        validate_business_id(business_id)


@pytest.mark.usefixtures("english")
def test_a_full_width_business_id_is_refused_with_a_message_naming_half_width_digits():
    with pytest.raises(ValidationError) as refused:
        validate_business_id("２２０９９１３１")

    assert "half-width digits 0–9" in refused.value.messages[0]


@pytest.mark.usefixtures("english")
def test_eight_ascii_digits_with_a_bad_checksum_are_refused_for_the_checksum():
    with pytest.raises(ValidationError) as refused:
        validate_business_id("12345678")

    assert "valid checksum" in refused.value.messages[0]


@pytest.mark.parametrize("business_id", ["²2099131", "２２０９９１３１"])
def test_the_enterprise_form_answers_a_business_id_in_other_digits_with_a_message(
    admin_client, business_id, demo
):
    # given
    master = MemberFactory()
    evaluate_member(member_id=master.pk, cause=Cause.RECOMPUTE)

    # when
    response = admin_client.post(
        reverse("admin:b2b_enterprise_add"),
        {
            "name": "甲公司",
            "business_id": business_id,
            "master": master.pk,
            "sub_accounts-TOTAL_FORMS": 0,
            "sub_accounts-INITIAL_FORMS": 0,
        },
    )

    # then
    assert response.status_code == 200
    assert f"{business_id}：統一編號須以半形數字 0–9 填寫" in response.content.decode()
    assert not Enterprise.objects.exists()
