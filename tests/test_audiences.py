"""Saved audiences (受眾): filters an operator builds, counts, saves, exports and tags with."""

import datetime as dt

import pytest
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from membership.models import AuditEntry, Member, MemberTag, Tag
from segments.audiences import filter_members, members_of
from segments.models import Audience
from segments.services import compute_segments
from tests.factories import MemberFactory, OrderFactory, UserFactory


@pytest.fixture
def superuser(db):
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def shoppers(programme):
    """Twelve members: member k spent k × NT$1,000 in one order k × 20 days ago."""
    members = []
    for k in range(1, 13):
        m = MemberFactory(name=f"顧客{k:02d}", birthday=dt.date(1990, (k % 12) + 1, 5))
        OrderFactory(
            member=m, amount=1_000 * k, placed_at=timezone.now() - dt.timedelta(days=20 * k)
        )
        m.last_order_at = timezone.now() - dt.timedelta(days=20 * k)
        m.save()
        members.append(m)
    return members


def test_spend_in_the_rolling_year_matches_an_independent_count(shoppers):
    _filterset, members = filter_members(QueryDict("window=rolling_12m&spend_min=5000"))

    expected = {
        m.pk
        for m in Member.objects.all()
        if sum(o.amount - o.refunded_amount for o in m.orders.all()) >= 5_000
    }
    assert set(members.values_list("pk", flat=True)) == expected
    assert len(expected) == 8  # k = 5 … 12


def test_tags_any_all_and_none_combine(shoppers):
    red, blue = Tag.objects.create(name="紅"), Tag.objects.create(name="藍")
    for m in shoppers[:4]:
        MemberTag.objects.create(member=m, tag=red)
    for m in shoppers[2:6]:
        MemberTag.objects.create(member=m, tag=blue)

    any_ = filter_members(QueryDict(f"tags_any={red.pk}&tags_any={blue.pk}"))[1]
    all_ = filter_members(QueryDict(f"tags_all={red.pk}&tags_all={blue.pk}"))[1]
    none = filter_members(QueryDict(f"tags_none={red.pk}&tags_none={blue.pk}"))[1]

    assert any_.count() == 6
    assert set(all_) == set(shoppers[2:4])
    assert none.count() == Member.objects.count() - 6


def test_rfm_cell_and_lifecycle_filters_read_the_segments(shoppers):
    compute_segments()

    newest = filter_members(QueryDict("lifecycle=new"))[1]
    churned = filter_members(QueryDict("lifecycle=declining"))[1]

    assert list(newest) == [shoppers[0]]  # 20 days ago, the only first order under 30 days
    assert set(churned) == {m for k, m in enumerate(shoppers, 1) if 20 * k > 90}


def test_a_bad_filter_value_selects_nobody_and_says_why(shoppers):
    filterset, members = filter_members(QueryDict("spend_min=lots"))

    assert members.count() == 0
    assert "spend_min" in filterset.errors


def test_the_builder_counts_and_saves_an_audience_posted_by_the_operator(
    client, superuser, shoppers
):
    client.force_login(superuser)
    url = reverse("admin:segments_audience_add")

    form = {"name": "高消費", "description": "", "window": "lifetime", "spend_min": "10000"}

    preview = client.post(url, {**form, "_preview": "1"})
    assert not Audience.objects.exists()  # counting saves nothing
    saved = client.post(url, form)

    assert preview.context["preview"]["count"] == 3  # k = 10, 11, 12
    assert "高消費" in preview.content.decode()  # the form keeps what was typed
    assert saved.status_code == 302
    audience = Audience.objects.get(name="高消費")
    assert members_of(audience).count() == 3
    assert AuditEntry.objects.filter(action="audience.save").count() == 1


def test_counting_on_a_saved_audience_keeps_every_ticked_value_and_saves_nothing(
    client, superuser, shoppers
):
    client.force_login(superuser)
    audience = Audience.objects.create(name="成長", query="lifecycle=growing")
    url = reverse("admin:segments_audience_change", args=[audience.pk])

    page = client.post(
        url,
        {"name": "成長", "description": "", "lifecycle": ["growing", "mature"], "_preview": "1"},
    )

    assert page.context["adminform"].form.initial["lifecycle"] == ["growing", "mature"]
    audience.refresh_from_db()
    assert audience.query == "lifecycle=growing"


def test_saving_an_audience_with_a_bad_filter_shows_the_error_and_saves_nothing(
    client, superuser, shoppers
):
    client.force_login(superuser)

    page = client.post(
        reverse("admin:segments_audience_add"), {"name": "壞", "orders_min": "-3", "window": ""}
    )

    assert page.status_code == 200
    assert "orders_min" in page.context["adminform"].form.errors
    assert not Audience.objects.exists()


def test_tagging_an_audience_tags_exactly_its_members(client, superuser, shoppers):
    client.force_login(superuser)
    audience = Audience.objects.create(name="生日一月", query="birthday_month=1")
    tag = Tag.objects.create(name="一月壽星")

    client.post(
        reverse("admin:segments_audience_changelist"),
        {
            "action": "tag_members",
            "_selected_action": [audience.pk],
            "apply": "1",
            "tag": tag.pk,
            "reason": "生日活動",
        },
    )

    tagged = set(MemberTag.objects.filter(tag=tag).values_list("member_id", flat=True))
    assert tagged == set(members_of(audience).values_list("pk", flat=True))
    assert len(tagged) == 1


def test_exporting_an_audience_streams_its_members(client, superuser, shoppers):
    client.force_login(superuser)
    audience = Audience.objects.create(name="前三", query="window=lifetime&spend_min=10000")

    response = client.post(
        reverse("admin:segments_audience_changelist"),
        {"action": "export_members", "_selected_action": [audience.pk]},
    )

    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert [line.split(",")[1] for line in body.splitlines()[1:]] == ["顧客10", "顧客11", "顧客12"]
