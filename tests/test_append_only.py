"""Ledgers are append-only in the database (PostgreSQL triggers), even for the site itself.

The tests run as the application's role: a role that does not own the tables, granted
SELECT, INSERT, UPDATE and DELETE on them, as the README tells production to run. Such a
role can post to a ledger but cannot change or delete a row, nor drop the trigger.
Everything (the role too) is created inside the test's transaction and rolled back.
"""

import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from membership.models import Cause, GiftIssue, TierHistory
from membership.services import evaluate_member, record_order
from points.models import Entry
from points.services import earn
from subscriptions import services as subscriptions
from subscriptions.demo import create_demo_plans
from subscriptions.models import ChargeAttempt, Plan, SubscriptionEvent
from tests.factories import MemberFactory, OrderFactory

pytestmark = pytest.mark.postgres


@pytest.fixture
def ledgers(demo, settings):
    """One row in every ledger: an upgrade with its gift, points, a paid subscription."""
    settings.SUBSCRIPTION_ASK_AGAIN_AFTER = []
    plans = {p.name: p for p in create_demo_plans()}
    member = MemberFactory()
    evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    record_order(member_id=member.pk, external_id="SO-1", amount=12_000, placed_at=timezone.now())
    earn(member_id=member.pk, points=100, source="test", source_ref="welcome", key="welcome")
    subscriptions.subscribe(member=member, plan=plans["基礎方案"], card_token="tok_ok")
    return member


@pytest.fixture
def as_app_role(ledgers):
    """SET ROLE to a fresh role that owns nothing, with the site's usual grants."""
    role = f"vip_app_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} NOLOGIN")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        cursor.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
        )
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
        cursor.execute(f"SET ROLE {role}")
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == role
    yield role
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


def refused(change) -> str:
    """Run ``change`` in a savepoint; return the database's refusal (or fail without one)."""
    with pytest.raises(DatabaseError) as error, transaction.atomic():
        change()
    return str(error.value)


def sql_delete(model, pk: int) -> None:
    # In SQL: the ORM's delete() would stop first at a protected foreign key (Lot.entry).
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE id = %s", [pk])


LEDGERS = [
    (Entry, {"points": 1_000_000}),
    (TierHistory, {"reason": "rewritten"}),
    (GiftIssue, {"gift": "a bigger gift"}),
    (SubscriptionEvent, {"kind": "rewritten"}),
    (ChargeAttempt, {"amount": 1}),
]


@pytest.mark.parametrize(("model", "change"), LEDGERS, ids=[m.__name__ for m, _ in LEDGERS])
def test_the_application_role_cannot_update_or_delete_a_ledger_row(as_app_role, model, change):
    # given: the ledger has rows, written by the services
    rows = model.objects.all()
    assert rows.exists()

    # when / then: UPDATE through the ORM and DELETE in SQL are refused, nothing changed
    assert "append-only" in refused(lambda: rows.update(**change))
    assert "append-only" in refused(lambda: sql_delete(model, rows[0].pk))
    field, value = next(iter(change.items()))
    assert not model.objects.filter(**{field: value}).exists()


def test_the_application_role_cannot_drop_a_ledger_trigger(as_app_role):
    def drop():
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER points_entry_append_only ON points_entry")

    assert "must be owner" in refused(drop)


def test_the_application_role_still_posts_to_the_ledgers(as_app_role, ledgers):
    # when: the site, as its role, earns points and records an upgrading order
    earn(member_id=ledgers.pk, points=50, source="test", source_ref="again", key="again")
    record_order(member_id=ledgers.pk, external_id="SO-2", amount=30_000, placed_at=timezone.now())

    # then
    assert Entry.objects.filter(idempotency_key="again").exists()
    assert TierHistory.objects.filter(member=ledgers, cause=Cause.ORDER).count() == 2


def test_the_set_based_recompute_runs_as_the_application_role(as_app_role, ledgers):
    from membership.services.bulk import recompute_members

    # given: an order recorded without its evaluation (as an import writes them)
    OrderFactory(member=ledgers, amount=30_000, placed_at=timezone.now())

    # when: the recompute (temporary tables, set-based writes) runs as the role
    recompute_members()

    # then
    ledgers.refresh_from_db()
    assert ledgers.tier.name == "金卡"


def test_the_email_outbox_may_still_mark_a_tier_change_as_notified(as_app_role):
    # given
    row = TierHistory.objects.filter(notified_at__isnull=True).first()

    # when
    TierHistory.objects.filter(pk=row.pk).update(notified_at=timezone.now())

    # then
    assert TierHistory.objects.get(pk=row.pk).notified_at is not None


def subscribe_unanswered(token: str):
    """A new member's subscription whose first payment has no answer yet."""
    member = MemberFactory()
    evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    plan = Plan.objects.get(name="基礎方案")
    return subscriptions.subscribe(member=member, plan=plan, card_token=token)


def test_a_pending_charge_attempt_may_take_its_answer_but_nothing_else(as_app_role):
    # given
    sub = subscribe_unanswered("tok_timeout")
    rows = ChargeAttempt.objects.filter(subscription=sub, result="pending")

    # when / then
    assert "append-only" in refused(lambda: rows.update(amount=1))
    assert "append-only" in refused(lambda: sql_delete(ChargeAttempt, rows[0].pk))
    assert rows.update(result="declined", message="declined", answered_at=timezone.now()) == 1


def test_the_sweeper_records_a_late_answer_on_a_pending_charge_attempt(as_app_role):
    # given: a subscription whose first payment's answer was lost
    sub = subscribe_unanswered("tok_timeout_then_ok")

    # when: the sweeper asks again and records the answer
    subscriptions.settle_pending_charges()

    # then: the answer is written; after that the attempt no longer changes
    attempt = ChargeAttempt.objects.get(subscription=sub)
    assert attempt.result == "succeeded"
    rows = ChargeAttempt.objects.filter(pk=attempt.pk)
    assert "append-only" in refused(lambda: rows.update(result="declined"))
    assert "append-only" in refused(lambda: rows.update(message="rewritten"))
