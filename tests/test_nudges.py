"""Predictive nudges with DESIGN.md's triggers: NT$500 from the next tier, 3 months stalled,
60 days without a purchase — once a month each, on the member's page and by e-mail."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from membership import services
from membership.models import Cause, Member, MemberTag, Nudge, NudgeOffer, Tag
from membership.services.nudges import offer_reach, offers_for
from segments.audiences import save_audience
from tests.factories import MemberFactory

pytestmark = pytest.mark.usefixtures("english")


def member_who_spent(*orders, **kwargs):
    """``orders`` are (NT$, days ago); the member is placed afterwards."""
    member = MemberFactory(**kwargs)
    for i, (amount, days_ago) in enumerate(orders):
        services.record_order(
            member_id=member.pk,
            external_id=f"{member.pk}-{i}",
            amount=amount,
            placed_at=timezone.now() - dt.timedelta(days=days_ago),
        )
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    return member


def nudges():
    return {
        (n.member_id, n.kind): (n.tier.name, n.amount) for n in Nudge.objects.select_related("tier")
    }


def test_a_member_within_500_of_the_next_tier_is_nudged_to_top_up(programme):
    close = member_who_spent((9_600, 10))
    far = member_who_spent((9_400, 10))

    services.compute_nudges()

    assert nudges() == {(close.pk, "about_to_upgrade"): ("銀卡", 400)}
    assert far.pk not in {member for member, _kind in nudges()}


def test_a_base_tier_member_without_an_order_for_3_months_is_stalled(programme):
    stalled = member_who_spent((2_000, 100))
    recent = member_who_spent((2_000, 30))

    services.compute_nudges()

    assert nudges() == {(stalled.pk, "stalled"): ("銀卡", 8_000)}
    assert recent.pk not in {member for member, _kind in nudges()}


def test_a_silver_member_without_an_order_for_3_months_is_stalled_on_the_way_to_gold(programme):
    # 銀卡 on NT$12,000 bought 100 days ago: 金卡 (NT$30,000) is NT$18,000 away
    stalled = member_who_spent((12_000, 100))
    recent = member_who_spent((12_000, 40))

    services.compute_nudges()

    assert nudges()[(stalled.pk, "stalled")] == ("金卡", 18_000)
    assert (recent.pk, "stalled") not in nudges()


def test_a_member_at_the_top_tier_is_never_stalled(programme):
    top = member_who_spent((35_000, 100))

    services.compute_nudges()

    assert (top.pk, "stalled") not in nudges()


def test_a_silver_member_without_a_purchase_for_60_days_is_at_risk_of_downgrade(programme):
    at_risk = member_who_spent((12_000, 61))
    active = member_who_spent((12_000, 20))

    services.compute_nudges()

    assert nudges() == {(at_risk.pk, "downgrade_risk"): ("銀卡", 0)}  # 12,000 ≥ 8,000 to keep
    assert active.pk not in {member for member, _kind in nudges()}


def test_a_nudge_is_made_once_a_month(programme, time_machine):
    member_who_spent((9_600, 10))

    first = services.compute_nudges()
    again = services.compute_nudges()
    time_machine.move_to(timezone.now() + dt.timedelta(days=32))
    next_month = services.compute_nudges()

    assert (first, again) == (1, 0)
    assert next_month >= 1
    assert Nudge.objects.values("period").distinct().count() == 2


def test_the_member_page_shows_the_nudge_with_the_operators_offer(programme, client):
    user = get_user_model().objects.create_user("amy", password="pw-for-tests-1")
    member = member_who_spent((9_600, 10), user=user)
    NudgeOffer.objects.create(kind="about_to_upgrade", text="Free shipping on your next order")
    services.compute_nudges()
    client.force_login(user)

    page = client.get(reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "Only NT$400 more to reach 銀卡." in page
    assert "Free shipping on your next order" in page
    assert member.pk


def test_a_nudge_whose_reason_is_gone_is_not_shown(programme, client):
    user = get_user_model().objects.create_user("amy", password="pw-for-tests-1")
    member = member_who_spent((9_600, 10), user=user)
    services.compute_nudges()
    services.record_order(
        member_id=member.pk, external_id="top-up", amount=500, placed_at=timezone.now()
    )
    client.force_login(user)

    page = client.get(reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "more to reach" not in page


def test_nudges_are_e_mailed_once(programme, mailoutbox):
    member_who_spent((9_600, 10), email="amy@example.com", language="en")
    NudgeOffer.objects.create(kind="about_to_upgrade", text="Free shipping on your next order")
    services.compute_nudges()

    sent = services.send_nudges()
    again = services.send_nudges()

    assert (sent, again) == (1, 0)
    assert mailoutbox[0].to == ["amy@example.com"]
    assert "Only NT$400 more to reach 銀卡." in mailoutbox[0].body
    assert "Free shipping on your next order" in mailoutbox[0].body


@pytest.fixture
def vip_audience_and_offers(programme):
    """Nine members NT$100–500 from 銀卡 (three of them tagged 大客戶), a tagged member far
    from it; an offer for everyone and a better one aimed at the audience 大客戶."""
    big = Tag.objects.create(name="大客戶")
    close = [member_who_spent((9_500 + 50 * k, 10)) for k in range(9)]
    far = member_who_spent((3_000, 10))
    for member in [close[0], close[4], close[8], far]:
        MemberTag.objects.create(member=member, tag=big)
    audience = save_audience(name="大客戶", query=QueryDict(f"tags_any={big.pk}"), actor=None)
    NudgeOffer.objects.create(kind="about_to_upgrade", text="Free shipping")
    aimed = NudgeOffer.objects.create(
        kind="about_to_upgrade", audience=audience, text="NT$300 off for our big customers"
    )
    services.compute_nudges()
    return big, aimed


def test_an_offer_aimed_at_an_audience_reaches_exactly_its_nudged_members(
    vip_audience_and_offers,
):
    big, aimed = vip_audience_and_offers

    offers = offers_for(Nudge.objects.all())

    reached = {n.member_id for n in Nudge.objects.all() if offers[n.pk] == aimed.text}
    independent = set(
        Nudge.objects.filter(kind="about_to_upgrade", member__tags=big).values_list(
            "member_id", flat=True
        )
    )
    assert reached == independent
    assert len(reached) == offer_reach(aimed) == 3  # the far member is not nudged
    assert sum(text == "Free shipping" for text in offers.values()) == 6


def test_the_e_mail_carries_the_audiences_offer_to_its_members_only(
    vip_audience_and_offers, mailoutbox
):
    big, aimed = vip_audience_and_offers
    for member in Member.objects.all():
        member.email, member.language = f"m{member.pk}@example.com", "en"
        member.save()

    services.send_nudges()

    assert sorted(m.to[0] for m in mailoutbox if aimed.text in m.body) == sorted(
        f"m{pk}@example.com"
        for pk in Nudge.objects.filter(member__tags=big).values_list("member_id", flat=True)
    )


def test_a_second_offer_for_everyone_of_one_kind_is_refused(programme):
    NudgeOffer.objects.create(kind="stalled", text="10% off")

    with pytest.raises(ValidationError, match="already has an offer for everyone"):
        NudgeOffer(kind="stalled", text="15% off").full_clean()


def test_the_admin_saves_an_aimed_offer_and_shows_how_many_nudges_it_reaches(
    vip_audience_and_offers, client
):
    _big, aimed = vip_audience_and_offers
    client.force_login(get_user_model().objects.create_superuser("boss", "b@example.com", "pw"))
    url = reverse("admin:membership_nudgeoffer_add")

    response = client.post(
        url, {"kind": "stalled", "audience": aimed.audience_id, "text": "Come back", "active": "on"}
    )
    page = client.get(reverse("admin:membership_nudgeoffer_change", args=[aimed.pk]))

    assert response.status_code == 302
    assert NudgeOffer.objects.filter(kind="stalled", audience=aimed.audience).exists()
    assert "本月觸及的提醒數" in page.content.decode()
    assert '<div class="readonly">3</div>' in page.content.decode()
