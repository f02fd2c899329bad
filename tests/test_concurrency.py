"""Concurrent writers on PostgreSQL: real threads, each with its own connection."""

import threading

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from membership import services
from membership.models import Cause, GiftIssue, Member, MemberTag, Order, TierHistory
from tests.factories import MemberFactory, build_design_programme

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(*calls):
    """Start every call at once on its own thread and connection; return their errors."""
    barrier = threading.Barrier(len(calls))
    errors = []

    def run(call):
        try:
            barrier.wait()
            call()
        except Exception as exc:  # noqa: BLE001 - collected and asserted by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    close_old_connections()
    return errors


def test_the_same_order_sent_by_several_workers_at_once_counts_once():
    build_design_programme()
    member = MemberFactory()
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    placed_at = timezone.now()

    def send():
        services.record_order(
            member_id=member.pk, external_id="SO-RACE", amount=12_000, placed_at=placed_at
        )

    errors = run_together(*[send] * 6)

    assert errors == []
    assert Order.objects.filter(external_id="SO-RACE").count() == 1
    assert TierHistory.objects.filter(member=member, cause="order").count() == 1
    assert GiftIssue.objects.filter(member=member).count() == 1


def test_orders_of_a_holder_and_its_sub_accounts_at_once_all_count_without_a_deadlock():
    build_design_programme()
    holder = MemberFactory()
    subs = [MemberFactory(tier_holder=holder) for _ in range(3)]
    placed_at = timezone.now()

    def send(member, ref):
        return lambda: services.record_order(
            member_id=member.pk, external_id=ref, amount=4_000, placed_at=placed_at
        )

    errors = run_together(
        *[send(m, f"SO-{i}") for i, m in enumerate([holder, *subs, holder, *subs])]
    )

    assert errors == []
    assert Order.objects.filter(external_id__startswith="SO-").count() == 8
    holder.refresh_from_db()
    assert holder.tier.name == "金卡"  # NT$32,000 across the four accounts
    assert set(Member.objects.filter(tier_holder=holder).values_list("tier_id", flat=True)) == {
        holder.tier_id
    }


def test_shop_orders_by_external_id_lock_a_holder_without_one_first_and_never_deadlock():
    build_design_programme()
    holder = MemberFactory(external_id=None)  # a holder the shop does not know
    subs = [MemberFactory(external_id=f"SUB-{i}", tier_holder=holder) for i in range(4)]
    placed_at = timezone.now()

    def send(sub, ref):
        return lambda: services.record_order(
            member_external_id=sub.external_id, external_id=ref, amount=4_000, placed_at=placed_at
        )

    errors = run_together(*[send(sub, f"EXT-{i}") for i, sub in enumerate(subs + subs)])

    assert errors == []
    assert Order.objects.filter(external_id__startswith="EXT-").count() == 8
    holder.refresh_from_db()
    assert holder.tier.name == "金卡"  # NT$32,000 across the sub-accounts


def test_two_operators_tagging_the_same_member_at_once_keep_both_tags():
    programme = build_design_programme()
    member = MemberFactory()
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)

    errors = run_together(
        lambda: services.add_tag(member_id=member.pk, tag=programme.enterprise_tag),
        lambda: services.add_tag(member_id=member.pk, tag=programme.staff_tag),
    )

    assert errors == []
    assert MemberTag.objects.filter(member=member).count() == 2
    assert Member.objects.get(pk=member.pk).group == programme.staff


def test_two_recomputes_at_once_write_each_change_and_gift_once():
    build_design_programme()
    members = [MemberFactory() for _ in range(30)]
    for i, m in enumerate(members):
        Order.objects.create(member=m, external_id=f"C{i}", amount=35_000, placed_at=timezone.now())

    errors = run_together(services.recompute_members, services.recompute_members)

    assert errors == []
    assert TierHistory.objects.count() == 30
    assert GiftIssue.objects.count() == 30
