"""Read replicas (config/replica.py): the member's pages, exports and the dashboard read
from the replica; writes, transactions, logins and a visitor's reads just after their own
change go to the primary. In tests the replica is a TEST MIRROR of default: the same
database through a second connection, so where each query went can be seen."""

import time

import pytest
from django.contrib.sessions.models import Session
from django.db import connections, transaction
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from config.replica import (
    PIN_COOKIE,
    REPLICA,
    PrimaryReplicaRouter,
    reads_from_replica,
)
from membership.models import Member, Order
from tests.factories import MemberFactory, OrderFactory, UserFactory

router = PrimaryReplicaRouter()
BOTH = ["default", "replica"]


@pytest.fixture
def replica(settings):
    settings.READ_REPLICA = True
    yield
    # The mirror's own connection, closed so the test database can be dropped at the end.
    connections["replica"].close()


def routed_in_view(request, read):
    """What ``read()`` returns inside a view marked @reads_from_replica."""
    result = {}

    @reads_from_replica
    def view(request):
        result["db"] = read()
        return None

    view(request)
    return result["db"]


def test_a_marked_view_reads_members_and_orders_from_the_replica(replica):
    request = RequestFactory().get("/me/")

    assert routed_in_view(request, lambda: router.db_for_read(Member)) == REPLICA
    assert routed_in_view(request, lambda: router.db_for_read(Order)) == REPLICA


def test_writes_go_to_the_primary_even_inside_a_marked_view(replica):
    request = RequestFactory().get("/me/")

    assert routed_in_view(request, lambda: router.db_for_write(Member)) == "default"


def test_a_view_not_marked_reads_from_the_primary(replica):
    assert router.db_for_read(Member) == "default"


def test_logins_and_sessions_are_read_from_the_primary(replica):
    request = RequestFactory().get("/me/")

    assert routed_in_view(request, lambda: router.db_for_read(Session)) == "default"


@pytest.mark.django_db
def test_reads_inside_a_transaction_go_to_the_primary(replica):
    request = RequestFactory().get("/me/")

    def read_in_transaction():
        with transaction.atomic():
            return router.db_for_read(Member)

    assert routed_in_view(request, read_in_transaction) == "default"


def test_a_visitor_who_just_changed_something_reads_from_the_primary(replica):
    request = RequestFactory().get("/me/")
    request.COOKIES[PIN_COOKIE] = str(time.time() + 5)

    assert routed_in_view(request, lambda: router.db_for_read(Member)) == "default"


def test_a_few_seconds_later_they_read_from_the_replica_again(replica):
    request = RequestFactory().get("/me/")
    request.COOKIES[PIN_COOKIE] = str(time.time() - 1)

    assert routed_in_view(request, lambda: router.db_for_read(Member)) == REPLICA


def test_without_a_replica_everything_reads_from_the_primary(settings):
    settings.READ_REPLICA = False
    request = RequestFactory().get("/me/")

    assert routed_in_view(request, lambda: router.db_for_read(Member)) == "default"


def test_nothing_is_migrated_on_the_replica():
    assert router.allow_migrate("replica", "membership") is False
    assert router.allow_migrate("default", "membership") is True


# -- through the site: committed rows (transaction=True), so the replica connection sees them


@pytest.fixture
def member_client(client, programme):
    user = UserFactory()
    member = MemberFactory(user=user)
    OrderFactory(member=member, amount=1_000)
    client.force_login(user)
    return client


def queries_on_each(client, method, url, **kwargs):
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections["replica"]) as secondary,
    ):
        response = getattr(client, method)(url, **kwargs)
    assert response.status_code in (200, 302)
    return [q["sql"] for q in primary], [q["sql"] for q in secondary]


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_the_member_page_reads_the_member_from_the_replica_and_the_session_from_the_primary(
    replica, member_client
):
    primary, secondary = queries_on_each(member_client, "get", reverse("members:my_tier"))

    assert any('"membership_member"' in sql for sql in secondary)
    assert not any('"membership_member"' in sql for sql in primary)
    assert any('"django_session"' in sql for sql in primary)


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_after_a_change_the_member_reads_from_the_primary_for_a_few_seconds(
    replica, member_client, settings
):
    settings.READ_YOUR_WRITES_SECONDS = 5
    member_client.post(reverse("set_language"), {"language": "en"})
    assert PIN_COOKIE in member_client.cookies

    primary, secondary = queries_on_each(member_client, "get", reverse("members:my_tier"))

    assert secondary == []
    assert any('"membership_member"' in sql for sql in primary)


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_the_member_export_streams_its_rows_from_the_replica(replica, admin_client, programme):
    MemberFactory(name="匯出會員")

    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections["replica"]) as secondary,
    ):
        response = admin_client.get(reverse("admin:imports_export", args=["members"]))
        body = b"".join(response.streaming_content).decode("utf-8-sig")

    assert "匯出會員" in body
    assert any('"membership_member"' in q["sql"] for q in secondary)
    assert not any('FROM "membership_member"' in q["sql"] for q in primary)
