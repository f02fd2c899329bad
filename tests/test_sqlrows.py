"""Rows of hand-written statements made into model values (membership/sqlrows.py)."""

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from membership.sqlrows import column_value


def test_a_decimal_sqlite_hands_back_as_a_float_becomes_the_decimal_it_was_written_as():
    value = column_value("DecimalField", 0.1)

    assert value == Decimal("0.1")
    assert isinstance(value, Decimal)


def test_a_hand_written_insert_stores_what_the_orms_save_stores(programme):
    from membership.models import Cause, Member, TierHistory
    from membership.sqlrows import insert_row
    from tests.factories import MemberFactory

    member = MemberFactory()
    fields = {
        "member": member,
        "to_group_id": member.group_id,
        "cause": Cause.ORDER,
        "reason": "滿額升等",
        "explanation": {"spend": 12_000, "tiers": ["銀卡"]},
        "created_at": timezone.now(),
    }
    by_hand, by_orm = TierHistory(**fields), TierHistory(**fields)

    insert_row(by_hand)
    by_orm.save()

    assert by_hand.pk is not None
    assert not by_hand._state.adding
    stored = TierHistory.objects.values().get(pk=by_hand.pk)
    assert {**stored, "id": None} == {**TierHistory.objects.values().get(pk=by_orm.pk), "id": None}
    assert Member.objects.get(pk=member.pk).tier_history.count() == 2


def test_a_hand_written_update_writes_only_the_named_columns(programme):
    from membership.models import Member
    from membership.sqlrows import update_columns
    from tests.factories import MemberFactory

    member = MemberFactory(name="王小明")
    member.name = "改過的名字"  # not named: stays as stored
    member.tier_since = timezone.now()
    member.next_review_on = dt.date(2027, 3, 31)

    update_columns(member, ("tier_since", "next_review_on"))

    stored = Member.objects.get(pk=member.pk)
    assert (stored.name, stored.tier_since, stored.next_review_on) == (
        "王小明",
        member.tier_since,
        dt.date(2027, 3, 31),
    )


def test_no_save_receiver_listens_to_the_models_written_by_hand():
    # insert_row and update_columns send no pre_save/post_save: a receiver added for
    # these models would silently miss the writes of every order that moves a tier.
    from django.db.models.signals import post_save, pre_save

    from membership.models import Member, TierHistory

    for model in (Member, TierHistory):
        assert not post_save.has_listeners(model)
        assert not pre_save.has_listeners(model)
