"""The member summary (會員摘要): the tier page from one read, never stale.

After every kind of change the page read from the summary row equals the page computed
afresh (``member_dashboard``), and ``check_member_summaries`` finds nothing.
"""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from membership import services
from membership.models import Cause, Member, MemberSummary, Tag, Tier
from membership.selectors import Shown, member_dashboard, member_page, page_member
from membership.services.summary import rebuild_member_summaries, summary_disagreements
from points import services as points
from points.portal import points_panel, points_summary
from tests.factories import MemberFactory, OrderFactory, UserFactory

TAIPEI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=TAIPEI)

pytestmark = pytest.mark.usefixtures("frozen_clock")


def shop_order(member, ref, amount, days_ago=20):
    return services.record_order(
        member_id=member.pk,
        external_id=ref,
        amount=amount,
        placed_at=timezone.now() - dt.timedelta(days=days_ago),
    ).order


def facts(dash) -> dict:
    ev, p, r = dash.evaluation, dash.progress, dash.retention
    return {
        "group": ev.group.id if ev.group else None,
        "tier": ev.effective.id if ev.effective else None,
        "value": ev.value,
        "shared_from": ev.shared_from,
        "progress": (p.next_tier.pk, p.needed, p.percent, p.by) if p else None,
        "retention": (r.tier.pk, r.needed, r.review_on) if r else None,
        "history": [
            (h.created_at, getattr(h.to_tier, "name", None), h.get_cause_display())
            for h in dash.history
        ],
        "orders": [(o.pk, o.placed_at, o.amount, o.refunded_amount) for o in dash.orders],
        "nudges": [n.pk for n in dash.nudges],
    }


def read_page(member_id: int):
    """The member as the tier page reads them: one statement."""
    user_id = Member.objects.values_list("user_id", flat=True).get(pk=member_id)
    return page_member(user_id=user_id, now=timezone.now())


def assert_summary_equals_a_recomputation(member_id: int) -> None:
    member = read_page(member_id)
    from_summary = member_page(member)
    assert isinstance(from_summary.evaluation, Shown), "the page did not read the summary"
    assert facts(from_summary) == facts(member_dashboard(member))
    assert list(summary_disagreements()) == []


@pytest.fixture
def member(demo):
    return MemberFactory(user=UserFactory())


def test_an_order_of_12000_is_in_the_summary_at_once(member):
    shop_order(member, "A1", 12_000)

    assert MemberSummary.objects.get(member=member).value == 12_000
    assert_summary_equals_a_recomputation(member.pk)


@pytest.mark.postgres
def test_an_orders_summary_statement_is_short_enough_for_psycopg_to_keep_its_parse(member):
    # psycopg parses a longer statement's placeholders again on every run: an order's
    # refresh paid for that on every order.
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

    sent = []

    def keep(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    shop_order(member, "A1", 12_000)  # 銀卡: the member now has a review date to count to
    with connection.execute_wrapper(keep):
        shop_order(member, "A2", 1_000)

    (statement,) = [sql for sql in sent if "INTO membership_membersummary" in sql]
    assert "next_review_on" in statement
    assert len(statement.encode()) <= MAX_CACHED_STATEMENT_LENGTH


def test_a_partial_refund_that_keeps_the_tier_lowers_the_summary_value(member):
    order = shop_order(member, "A1", 12_000)
    shop_order(member, "A2", 3_000, days_ago=5)

    services.record_refund(order_id=order.pk, external_id="R1", amount=1_000)

    assert MemberSummary.objects.get(member=member).value == 14_000
    assert_summary_equals_a_recomputation(member.pk)


def test_cancelling_the_order_that_earned_silver_leaves_no_tier_in_the_summary(member):
    order = shop_order(member, "A1", 12_000)

    services.cancel_order(order_id=order.pk)

    summary = MemberSummary.objects.get(member=member)
    assert summary.value == 0
    assert summary.recent_orders[0]["status"] == "cancelled"
    assert_summary_equals_a_recomputation(member.pk)


def test_a_tier_change_by_the_set_based_recompute_is_in_the_summary(member):
    # given: orders written straight to the table, as an old system's data would be
    OrderFactory(member=member, amount=35_000, placed_at=timezone.now() - dt.timedelta(days=3))

    services.recompute_members()

    member.refresh_from_db()
    assert member.tier.name == "金卡"
    assert (
        MemberSummary.objects.get(member=member).recent_history[0]["to_tier_id"] == member.tier_id
    )
    assert_summary_equals_a_recomputation(member.pk)


def test_a_recompute_moving_more_members_than_the_inline_limit_leaves_their_rows_to_the_job(
    member, settings, django_capture_on_commit_callbacks
):
    # given: two members' orders written straight to the table, their rows up to date
    other = MemberFactory(user=UserFactory())
    for m in (member, other):
        OrderFactory(member=m, amount=35_000, placed_at=timezone.now() - dt.timedelta(days=3))
    rebuild_member_summaries()
    settings.MEMBERSHIP_SUMMARY_INLINE = 1

    with django_capture_on_commit_callbacks() as owed:
        result = services.recompute_members()

    assert result.summaries_dropped == 2
    assert not MemberSummary.objects.filter(member__in=[member, other]).exists()
    fresh = member_page(read_page(member.pk))  # until the job: computed afresh, never stale
    assert not isinstance(fresh.evaluation, Shown)
    assert fresh.evaluation.effective.name == "金卡"
    # when: the follow-up owed after the commit runs (the summaries job, here inline)
    with django_capture_on_commit_callbacks(execute=True):
        for callback in owed:
            callback()
    assert_summary_equals_a_recomputation(member.pk)
    assert_summary_equals_a_recomputation(other.pk)


def test_a_recompute_job_owes_the_summaries_job_once_after_its_last_chunk_not_per_chunk(
    member, settings
):
    from jobs import services as jobs
    from membership.models import OutboxMessage

    # given: two members in two chunks, their rows up to date, their orders moving them
    other = MemberFactory(user=UserFactory())
    for m in (member, other):
        OrderFactory(member=m, amount=35_000, placed_at=timezone.now() - dt.timedelta(days=3))
    rebuild_member_summaries()
    settings.MEMBERSHIP_SUMMARY_INLINE = 0
    owed = OutboxMessage.objects.filter(task_name="membership.tasks.refresh_member_summaries")
    job = jobs.start(kind="recompute", chunk=other.pk - member.pk)
    first_chunk = job.chunks.filter(step=0).order_by("id_from").first()

    # when: the first chunk runs, then the rest of the job
    jobs.run_chunk(first_chunk.pk)
    owed_after_a_chunk = owed.count()
    job = jobs.run_inline(job)

    # then: the chunk dropped its member's row without owing the job; the job's end owed it
    assert owed_after_a_chunk == 0
    assert not MemberSummary.objects.filter(member__in=[member, other]).exists()
    assert (job.status, job.result["summaries_dropped"], owed.count()) == ("done", 2, 1)


def test_the_summaries_job_writes_missing_and_expired_rows_and_nothing_twice(demo):
    from jobs import services as jobs

    members = MemberFactory.create_batch(3)
    rebuild_member_summaries()
    MemberSummary.objects.filter(member=members[0]).delete()
    MemberSummary.objects.filter(member=members[1]).update(valid_until=timezone.now())

    first = jobs.run(kind="summaries", chunk=2)
    again = jobs.run(kind="summaries", chunk=2)

    assert first.result == {"written": 2}
    assert again.result == {"written": 0}
    assert list(summary_disagreements()) == []


def test_a_manual_adjustment_with_a_lock_is_in_the_summary(member):
    shop_order(member, "A1", 12_000)
    gold = Tier.objects.get(group__is_default=True, name="金卡")

    services.adjust_tier(
        member_id=member.pk,
        tier=gold,
        reason="VIP 客訴補償",
        actor=UserFactory(is_staff=True),
        locked_until=timezone.localdate() + dt.timedelta(days=90),
    )

    member.refresh_from_db()
    assert member.tier == gold
    assert MemberSummary.objects.get(member=member).review_on == member.next_review_on
    assert_summary_equals_a_recomputation(member.pk)


def test_a_tier_grant_ending_before_midnight_limits_the_rows_validity(member):
    gold = Tier.objects.get(group__is_default=True, name="金卡")
    ends = timezone.now() + dt.timedelta(hours=3)

    services.grant_tier(
        member_id=member.pk,
        tier=gold,
        starts_at=timezone.now() - dt.timedelta(days=1),
        ends_at=ends,
        source="test",
        source_ref="g1",
    )

    assert MemberSummary.objects.get(member=member).valid_until == ends
    assert_summary_equals_a_recomputation(member.pk)


def test_after_a_grant_ends_the_page_is_computed_afresh(member):
    gold = Tier.objects.get(group__is_default=True, name="金卡")
    services.grant_tier(
        member_id=member.pk,
        tier=gold,
        starts_at=timezone.now() - dt.timedelta(days=1),
        ends_at=timezone.now() + dt.timedelta(hours=3),
        source="test",
        source_ref="g1",
    )

    with time_machine.travel(NOW + dt.timedelta(hours=4), tick=False):
        dash = member_page(read_page(member.pk))

    assert not isinstance(dash.evaluation, Shown)
    assert dash.evaluation.effective.name == "一般會員"  # the grant is over: the earned tier


def test_a_tag_that_moves_the_member_to_another_group_is_in_the_summary(member):
    shop_order(member, "A1", 12_000)

    services.add_tag(member_id=member.pk, tag=Tag.objects.get(name="企業客戶"))

    member.refresh_from_db()
    assert member.group.name == "企業 VIP"
    assert_summary_equals_a_recomputation(member.pk)


def test_a_plan_subscribed_and_changed_shows_on_the_page_from_the_one_read(demo, client):
    from subscriptions import services as subs
    from subscriptions.demo import create_demo_plans

    plans = {p.name: p for p in create_demo_plans()}
    user = get_user_model().objects.create_user("amy", password="pw-for-tests-1")
    member = MemberFactory(user=user)
    sub = subs.subscribe(member=member, plan=plans["進階方案"], card_token="tok_ok")

    subs.change_plan(subscription=sub, plan=plans["尊榮方案"])

    client.force_login(user)
    text = client.get(reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "From the next period: 尊榮方案" in text
    assert "金卡" in text
    assert_summary_equals_a_recomputation(member.pk)


@pytest.mark.parametrize("change", ["earn", "redeem", "expire", "adjust"])
def test_points_on_the_page_equal_the_ledger_after_every_posting(member, change):
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    shop_order(member, "A1", 12_000, days_ago=30)  # 120 points, past the return window
    if change == "redeem":
        points.redeem(member_id=member.pk, points=100, source="test", source_ref="r1", key="r1")
    elif change == "adjust":
        points.adjust(
            member_id=member.pk, points=-50, reason="誤發", actor=UserFactory(), key="adj1"
        )
    elif change == "expire":
        with time_machine.travel(NOW + dt.timedelta(days=400), tick=False):
            points.expire_due()

    _template, shown = points_panel(read_page(member.pk))

    assert shown["summary"] == points_summary(member.pk)
    assert (
        shown["summary"].balance == {"earn": 120, "redeem": 20, "expire": 0, "adjust": 70}[change]
    )
    assert_summary_equals_a_recomputation(member.pk)


def test_the_page_is_one_read_after_session_and_login_however_long_the_history(member, client):
    shop_order(member, "A1", 1_000)
    client.force_login(member.user)

    def queries() -> list[str]:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("members:my_tier")).status_code == 200
        return [q["sql"] for q in ctx.captured_queries]

    queries()  # the programme is read once, then cached
    few = queries()
    for i in range(30):
        shop_order(member, f"H{i}", 2_000, days_ago=i)

    many = queries()
    assert len(many) == len(few) == 3  # the session, the login, the member with their page
    assert "membership_membersummary" in many[-1]


def test_the_check_command_reports_a_summary_that_disagrees_and_rebuild_repairs_it(member, capsys):
    shop_order(member, "A1", 12_000)
    MemberSummary.objects.filter(member=member).update(value=99)

    with pytest.raises(CommandError, match="1 member summary fields disagree"):
        call_command("check_member_summaries")
    assert f"member {member.pk}: value stored 99, fresh 12000" in capsys.readouterr().err

    call_command("check_member_summaries", "--rebuild")
    assert "Every member summary equals a fresh computation." in capsys.readouterr().out


def test_a_member_without_a_summary_is_a_disagreement_and_still_sees_the_right_page(member):
    shop_order(member, "A1", 12_000)
    MemberSummary.objects.filter(member=member).delete()

    assert [d.field for d in summary_disagreements()] == ["row"]
    dash = member_page(read_page(member.pk))
    assert dash.evaluation.value == 12_000


def test_a_row_holds_until_the_oldest_counted_order_leaves_the_rolling_window(member):
    # given: today is 2026-06-15; an order of 2025-06-20 counts until 2026-06-19 included
    shop_order(member, "A1", 12_000, days_ago=360)
    shop_order(member, "A2", 3_000, days_ago=30)
    leaves = dt.datetime(2026, 6, 20, 0, 0, tzinfo=TAIPEI)

    assert MemberSummary.objects.get(member=member).valid_until == leaves
    with time_machine.travel(leaves - dt.timedelta(minutes=1), tick=False):
        before = member_page(read_page(member.pk))
    with time_machine.travel(leaves, tick=False):
        after = member_page(read_page(member.pk))
        rebuild_member_summaries(expired_only=True)
        refreshed = member_page(read_page(member.pk))

    assert (isinstance(before.evaluation, Shown), before.evaluation.value) == (True, 15_000)
    assert (isinstance(after.evaluation, Shown), after.evaluation.value) == (False, 3_000)
    assert (isinstance(refreshed.evaluation, Shown), refreshed.evaluation.value) == (True, 3_000)


def test_a_row_whose_orders_stay_in_the_window_is_read_after_midnight(member):
    shop_order(member, "A1", 12_000, days_ago=30)

    with time_machine.travel(NOW + dt.timedelta(days=1), tick=False):
        tomorrow = member_page(read_page(member.pk))

    assert isinstance(tomorrow.evaluation, Shown)
    assert tomorrow.evaluation.value == 12_000


def test_rebuild_writes_every_member_in_chunks(demo):
    members = MemberFactory.create_batch(5)
    MemberSummary.objects.all().delete()

    written = rebuild_member_summaries(chunk=2)

    assert written == 5
    assert set(MemberSummary.objects.values_list("member_id", flat=True)) == {m.pk for m in members}


def test_a_sub_accounts_order_refreshes_the_masters_and_every_sharers_summary(demo):
    from b2b import services as b2b
    from b2b.models import Role

    operator = UserFactory()
    master, buyer, clerk = (MemberFactory(user=UserFactory()) for _ in range(3))
    enterprise = b2b.create_enterprise(
        master=master, actor=operator, name="甲公司", business_id="22099131"
    )
    for sub in (buyer, clerk):
        b2b.add_sub_account(
            enterprise=enterprise, member=sub, role=Role.objects.first(), actor=operator
        )

    shop_order(buyer, "B1", 120_000)

    summaries = dict(MemberSummary.objects.values_list("member_id", "value"))
    assert summaries[master.pk] == summaries[buyer.pk] == summaries[clerk.pk] == 120_000
    for member in (master, buyer, clerk):
        assert_summary_equals_a_recomputation(member.pk)
