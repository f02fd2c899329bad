"""`make run`'s demo: every list in the admin has something to see, the demo member's
page shows their points, and loading the demo twice adds nothing."""

import pytest
from django.apps import apps
from django.core.management import call_command

from membership.models import Member
from points.models import Entry
from points.services import ledger_discrepancies


def load_demo() -> None:
    call_command("seed_demo", members=300, verbosity=0)
    call_command("seed_demo_b2b", verbosity=0)
    call_command("seed_demo_plans", verbosity=0)
    call_command("seed_demo_points", verbosity=0)
    call_command("seed_demo_segments", verbosity=0)


@pytest.fixture
def demo(db, settings):
    settings.DEBUG = True  # the seed commands refuse to run in production
    load_demo()


def test_every_list_of_the_programme_has_something_to_see(demo):
    # The imports app's tables stay empty until an operator uploads a file; the programme
    # stamp is no list (a row PostgreSQL's triggers keep; SQLite has none).
    empty = [
        model._meta.label
        for app in ("membership", "points", "subscriptions", "b2b", "segments", "jobs")
        for model in apps.get_app_config(app).get_models()
        if model._meta.label != "membership.ProgrammeStamp" and not model.objects.exists()
    ]

    assert empty == []


def test_demo_member_page_shows_their_points(demo, client):
    client.force_login(Member.objects.get(external_id="DEMO-MEMBER").user)

    page = client.get("/me/").content.decode()

    assert "2,160" in page  # 2,400 brought over, +10 check-in, +50 review, −300 to brand A


def test_loading_the_demo_twice_adds_nothing(demo):
    members, entries = Member.objects.count(), Entry.objects.count()

    load_demo()

    assert (Member.objects.count(), Entry.objects.count()) == (members, entries)
    assert ledger_discrepancies() == []
