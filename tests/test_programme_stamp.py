"""The programme is kept per process under the database's programme stamp, and read
again as soon as any write to its tables changes the stamp (migration 0023's triggers)."""

import pytest
from django.db import connection, transaction
from django.utils import timezone

from membership import services
from membership.models import Member, ProgrammeStamp, Tag, Tier
from membership.services.rules import load_programme
from tests.factories import MemberFactory


def threshold(tier_name: str) -> int:
    return next(t.upgrade for g in load_programme().groups for t in g.tiers if t.name == tier_name)


@pytest.mark.postgres
def test_an_unchanged_programme_is_read_again_only_as_its_stamp(
    programme, django_assert_num_queries
):
    load_programme()
    with django_assert_num_queries(1):
        load_programme()


@pytest.mark.postgres
def test_a_threshold_changed_by_a_queryset_update_is_seen_by_the_next_load(programme):
    assert threshold("銀卡") == 10_000
    Tier.objects.filter(pk=programme.tiers["銀卡"].pk).update(upgrade_threshold=12_000)
    assert threshold("銀卡") == 12_000


@pytest.mark.postgres
def test_a_priority_changed_in_raw_sql_reorders_the_groups_at_the_next_load(programme):
    assert load_programme().groups[0].name == "KOL 合作"
    with connection.cursor() as cur:
        cur.execute("UPDATE membership_vipgroup SET priority = 9 WHERE id = %s", [programme.kol.pk])
    assert [g.name for g in load_programme().groups][2:] == ["KOL 合作", "全館 VIP"]


@pytest.mark.postgres
def test_an_entry_tag_taken_off_a_group_is_seen_by_the_next_load(programme):
    load_programme()
    programme.kol.entry_tags.remove(programme.kol_tag)
    assert load_programme().group(programme.kol.pk).entry_tags == ()


@pytest.mark.postgres
def test_a_renamed_entry_tag_is_seen_by_the_next_load(programme):
    load_programme()
    Tag.objects.filter(pk=programme.kol_tag.pk).update(name="網紅")
    assert load_programme().group(programme.kol.pk).entry_tags == ((programme.kol_tag.pk, "網紅"),)


@pytest.mark.postgres
def test_a_rolled_back_change_leaves_no_stale_programme_behind(programme):
    load_programme()
    seen = []

    def change_then_fail():
        with transaction.atomic():
            Tier.objects.filter(pk=programme.tiers["銀卡"].pk).update(upgrade_threshold=12_000)
            seen.append(threshold("銀卡"))  # kept under the stamp of the change
            raise RuntimeError

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert seen == [12_000]
    assert threshold("銀卡") == 10_000


@pytest.mark.postgres
def test_an_order_is_ranked_by_a_threshold_lowered_after_the_programme_was_kept(programme):
    member = MemberFactory()
    services.evaluate_member(member_id=member.pk, cause="recompute")  # keeps the programme
    Tier.objects.filter(pk=programme.tiers["銀卡"].pk).update(
        upgrade_threshold=500, retention_threshold=400
    )
    services.record_order(
        member_id=member.pk, external_id="S-1", amount=600, placed_at=timezone.now()
    )
    assert Member.objects.get(pk=member.pk).tier_id == programme.tiers["銀卡"].pk


def test_without_a_stamp_the_programme_is_read_afresh_every_time(
    programme, django_assert_num_queries
):
    ProgrammeStamp.objects.all().delete()
    load_programme()
    with django_assert_num_queries(4):  # the stamp (none) and the programme's three
        load_programme()
    Tier.objects.filter(pk=programme.tiers["銀卡"].pk).update(upgrade_threshold=12_000)
    assert threshold("銀卡") == 12_000
