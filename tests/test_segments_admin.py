"""The segments in the admin: boundaries an operator can set, segments they can only read."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from membership.models import Tag
from segments.services import compute_segments, current_settings
from tests.factories import MemberFactory, OrderFactory, UserFactory


@pytest.fixture
def superuser(db):
    return UserFactory(is_staff=True, is_superuser=True)


def settings_form(**changes) -> dict:
    data = {
        "rfm_months": 12,
        "high_score": 3,
        "new_days": 30,
        "active_days": 90,
        "churn_days": 365,
        "mature_orders": 5,
        "big_spender_score": 4,
        "promotion_share": 50,
        "promotion_min_orders": 2,
        "loyal_quarters": 3,
        "loyal_days": 365,
    }
    return data | changes


def test_the_settings_page_shows_the_rfm_cell_mapping(client, superuser):
    client.force_login(superuser)
    row = current_settings()

    page = client.get(reverse("admin:segments_segmentsettings_change", args=[row.pk]))

    assert page.status_code == 200
    assert "RFM：重要價值" in page.content.decode()


def test_lifecycle_days_that_do_not_rise_are_refused_and_nothing_changes(client, superuser):
    client.force_login(superuser)
    row = current_settings()

    page = client.post(
        reverse("admin:segments_segmentsettings_change", args=[row.pk]),
        settings_form(new_days=120),
    )

    assert page.status_code == 200  # the form again, with its error
    assert page.context["adminform"].form.errors
    row.refresh_from_db()
    assert row.new_days == 30


def test_a_system_tag_cannot_be_changed_or_deleted_in_the_admin(client, superuser):
    client.force_login(superuser)
    member = MemberFactory()
    OrderFactory(member=member)
    compute_segments()
    tag = Tag.objects.get(name="生命週期：新客")

    change = client.post(
        reverse("admin:membership_tag_change", args=[tag.pk]), {"name": "改名", "description": ""}
    )
    delete = client.post(reverse("admin:membership_tag_delete", args=[tag.pk]), {"post": "yes"})

    assert change.status_code == 403
    assert delete.status_code == 403
    assert Tag.objects.filter(name="生命週期：新客").exists()


def test_the_member_segment_list_filters_by_lifecycle_stage(client, superuser):
    client.force_login(superuser)
    new, old = MemberFactory(name="新朋友"), MemberFactory(name="老朋友")
    OrderFactory(member=new)
    OrderFactory(member=old, placed_at=new.joined_at)  # 400 days ago
    compute_segments()

    page = client.get(reverse("admin:segments_membersegment_changelist"), {"lifecycle": "new"})

    assert page.status_code == 200
    assert "新朋友" in page.content.decode()
    assert "老朋友" not in page.content.decode()


def test_the_member_lists_lifecycle_filter_shows_the_segment_jobs_stage(client, superuser):
    # Joined 400 days ago, one order 120 days ago: the segment job says 衰退 (declining);
    # the member list used to call it "active" by a rule of its own.
    now = timezone.now()
    declining = MemberFactory(joined_at=now - dt.timedelta(days=400))
    OrderFactory(member=declining, amount=1_000, placed_at=now - dt.timedelta(days=120))
    fresh = MemberFactory(joined_at=now - dt.timedelta(days=10))
    OrderFactory(member=fresh, amount=1_000, placed_at=now - dt.timedelta(days=5))
    compute_segments()
    client.force_login(superuser)

    page = client.get(reverse("admin:membership_member_changelist"), {"lifecycle": "declining"})

    shown = {m.pk for m in page.context["cl"].result_list}
    assert shown == {declining.pk}
    assert [str(label) for _value, label in page.context["cl"].filter_specs[-1].lookup_choices][
        :2
    ] == ["新客", "成長"]
