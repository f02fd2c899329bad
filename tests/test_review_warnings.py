"""The review warning (等級保留提醒): before a review that would lower the tier, the member
is told what is still needed and when — on the page and by e-mail, once per review.

The numbers: 全館 VIP 金卡 is kept at NT$24,000 over rolling 12 months. 王美華 reached
金卡 on 2025-07-15 with NT$32,000 (review 2026-07-15) and bought NT$22,000 on
2026-05-26. On 2026-06-15, 30 days before her review, the NT$32,000 will have left the
window by review day: NT$22,000 counts, NT$2,000 short.
"""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from membership import services
from membership.models import Cause, Member, Nudge, NudgeKind, VipGroup
from tests.factories import MemberFactory

TAIPEI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=TAIPEI)
REVIEW = dt.date(2026, 7, 15)

pytestmark = pytest.mark.usefixtures("frozen_clock", "english")


def gold_member(name: str, recent: int, *, reached_days_ago: int = 335, **kwargs) -> Member:
    """金卡 reached with NT$32,000 ``reached_days_ago``; ``recent`` NT$ bought 20 days ago."""
    member = MemberFactory(name=name, **kwargs)
    with time_machine.travel(NOW - dt.timedelta(days=reached_days_ago), tick=False):
        services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
        services.record_order(
            member_id=member.pk,
            external_id=f"{name}-gold",
            amount=32_000,
            placed_at=timezone.now(),
        )
    if recent:
        services.record_order(
            member_id=member.pk,
            external_id=f"{name}-recent",
            amount=recent,
            placed_at=timezone.now() - dt.timedelta(days=20),
        )
    member.refresh_from_db()
    return member


def warnings() -> dict:
    return {
        (n.member.name, n.period): (n.tier.name, n.amount)
        for n in Nudge.objects.filter(kind=NudgeKind.REVIEW_WARNING).select_related(
            "member", "tier"
        )
    }


def test_a_member_30_days_before_review_and_2000_under_retention_gets_one_warning(
    programme, mailoutbox, django_capture_on_commit_callbacks
):
    # given: 金卡 with its review on 2026-07-15, NT$22,000 of the NT$24,000 that keeps it
    meihua = gold_member("王美華", 22_000, email="meihua@example.com", language="en")
    assert (meihua.tier.name, meihua.next_review_on) == ("金卡", REVIEW)

    # when: the daily job runs, and runs again
    with django_capture_on_commit_callbacks(execute=True):
        first = services.compute_review_warnings()
    with django_capture_on_commit_callbacks(execute=True):
        second = services.compute_review_warnings()

    # then: one warning, one e-mail saying how much and by when
    assert (first, second) == (1, 0)
    assert warnings() == {("王美華", "2026-07-15"): ("金卡", 2_000)}
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["meihua@example.com"]
    assert (
        "Your tier is reviewed on 2026-07-15: spend NT$2,000 more before then to keep 金卡."
        in mailoutbox[0].body
    )


def test_the_warning_is_not_repeated_on_later_days_before_the_same_review(
    programme, frozen_clock, mailoutbox, django_capture_on_commit_callbacks
):
    gold_member("王美華", 22_000, email="meihua@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        services.compute_review_warnings()

    frozen_clock.shift(dt.timedelta(days=10))
    with django_capture_on_commit_callbacks(execute=True):
        later = services.compute_review_warnings()

    assert later == 0
    assert len(mailoutbox) == 1


def test_members_who_meet_retention_or_whose_review_is_further_off_are_not_warned(programme):
    gold_member("李安心", 25_000)  # above NT$24,000
    gold_member("張還早", 22_000, reached_days_ago=300)  # review in 65 days

    assert services.compute_review_warnings() == 0
    assert warnings() == {}


def test_a_group_warns_as_many_days_before_the_review_as_it_is_set_to(programme):
    gold_member("張還早", 22_000, reached_days_ago=300)  # review on 2026-08-19
    VipGroup.objects.filter(pk=programme.general.pk).update(review_warning_days=70)

    services.compute_review_warnings()

    assert warnings() == {("張還早", "2026-08-19"): ("金卡", 2_000)}


def test_a_group_set_to_0_days_sends_no_warning(programme):
    gold_member("王美華", 22_000)
    VipGroup.objects.filter(pk=programme.general.pk).update(review_warning_days=0)

    assert services.compute_review_warnings() == 0


def test_the_member_tier_page_shows_the_warning_with_the_amount_and_the_date(programme, client):
    user = get_user_model().objects.create_user("meihua", password="pw-for-tests-1")
    gold_member("王美華", 22_000, user=user)
    services.compute_review_warnings()
    client.force_login(user)

    english = client.get(reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    chinese = client.get(
        reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="zh-hant"
    ).content.decode()

    assert "spend NT$2,000 more before then to keep 金卡" in english
    assert "您的等級將於 2026-07-15 審核：在此之前再消費 NT$2,000，即可保留 金卡。" in chinese


def test_the_warning_leaves_the_page_once_the_member_has_bought_enough(programme, client):
    user = get_user_model().objects.create_user("meihua", password="pw-for-tests-1")
    meihua = gold_member("王美華", 22_000, user=user)
    services.compute_review_warnings()
    services.record_order(
        member_id=meihua.pk, external_id="top-up", amount=2_000, placed_at=timezone.now()
    )
    client.force_login(user)

    page = client.get(reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "Your tier is reviewed on" not in page


def test_an_operator_sets_a_groups_warning_days_on_the_group_page(programme, admin_client):
    from tests.test_programme_rules import group_form, post_group

    general = programme.general

    response = post_group(admin_client, general, group_form(general, review_warning_days=45))

    assert response.status_code == 302
    general.refresh_from_db()
    assert general.review_warning_days == 45


def test_a_warning_more_than_a_year_before_the_review_is_refused_with_a_message(
    programme, admin_client
):
    from tests.test_programme_rules import group_form, post_group

    general = programme.general

    response = post_group(admin_client, general, group_form(general, review_warning_days=400))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["review_warning_days"] == [
        "等級保留提醒最多於審核前 365 天發出。"
    ]
    general.refresh_from_db()
    assert general.review_warning_days == 30
