"""The login backend (config/auth.py): Django's ModelBackend with the session's user read by
one hand-written statement. Logins from before keep their sessions; a wrong password is
checked once."""

import datetime as dt
from unittest import mock

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model
from django.urls import reverse
from django.utils import timezone

from config.auth import AccountBackend
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

PASSWORD = "right-password-1"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@pytest.fixture
def amy(demo):
    user = get_user_model().objects.create_user("amy", password=PASSWORD, email="amy@example.tw")
    MemberFactory(user=user, name="林艾美")
    return user


def test_a_member_who_logs_in_has_a_session_naming_the_account_backend(client, amy):
    client.post(reverse("login"), {"username": "amy", "password": PASSWORD})

    assert client.session[BACKEND_SESSION_KEY] == "config.auth.AccountBackend"
    assert "林艾美" in client.get(reverse("members:my_tier")).content.decode()


def test_a_session_made_before_the_account_backend_still_opens_the_tier_page(client, amy):
    client.force_login(amy, backend=MODEL_BACKEND)

    response = client.get(reverse("members:my_tier"))

    assert response.status_code == 200
    assert "林艾美" in response.content.decode()


def test_a_wrong_password_is_hashed_once_not_once_per_listed_backend(client, amy):
    real = get_user_model().check_password
    with mock.patch.object(
        get_user_model(), "check_password", autospec=True, side_effect=real
    ) as checked:
        response = client.post(reverse("login"), {"username": "amy", "password": "wrong"})

    assert response.status_code == 200  # the form again, with its error
    assert checked.call_count == 1


def test_a_deactivated_login_is_logged_out_of_its_open_session(client, amy):
    client.force_login(amy, backend="config.auth.AccountBackend")
    get_user_model().objects.filter(pk=amy.pk).update(is_active=False)

    response = client.get(reverse("members:my_tier"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_session_user_has_every_field_the_orm_reads(amy):
    get_user_model().objects.filter(pk=amy.pk).update(
        last_login=timezone.now() - dt.timedelta(hours=3), first_name="艾美"
    )
    by_orm = get_user_model().objects.get(pk=amy.pk)

    by_hand = AccountBackend().get_user(amy.pk)

    fields = [f.attname for f in get_user_model()._meta.concrete_fields]
    # (value, type): SQLite hands back 1 for True, which == would not tell apart
    assert [(getattr(by_hand, f), type(getattr(by_hand, f))) for f in fields] == [
        (getattr(by_orm, f), type(getattr(by_orm, f))) for f in fields
    ]


def test_a_session_whose_user_was_deleted_has_no_user(amy):
    pk = amy.pk
    amy.delete()

    assert AccountBackend().get_user(pk) is None
