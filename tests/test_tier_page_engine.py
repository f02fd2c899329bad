"""The tier page in Jinja2 (config/jinja.py) and the sessions read by hand
(config/sessions.py): what Django's template language and session store did, they do."""

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from membership import services
from membership.models import Cause
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def logged_in_member(client, **kwargs):
    user = get_user_model().objects.create_user("amy", password="pw-for-tests-1")
    member = MemberFactory(user=user, **kwargs)
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    client.force_login(user)
    return member


def test_a_name_written_as_html_is_shown_as_text_on_the_tier_page(demo, client):
    logged_in_member(client, name='<script>alert("x")</script>')

    text = client.get(reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(" in text


def test_the_tier_page_header_is_the_one_every_member_page_has(demo, client):
    logged_in_member(client)

    tier = client.get(reverse("members:my_tier"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    other = client.get(reverse("members:calculator"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    def header(html: str) -> str:
        start, end = html.index('<header class="bar">'), html.index("</header>")
        return html[start:end].replace("/me/calculator/", "/me/")  # the language form's next

    without_tokens = r'value="[^"]{64}"'  # the CSRF tokens, new on every page
    assert re.sub(without_tokens, "", header(tier)) == re.sub(without_tokens, "", header(other))


def test_a_session_past_its_expiry_date_sends_the_member_to_log_in(demo, client):
    logged_in_member(client)
    Session.objects.update(expire_date=timezone.now() - dt.timedelta(seconds=1))

    response = client.get(reverse("members:my_tier"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_deleted_session_sends_the_member_to_log_in(demo, client):
    logged_in_member(client)
    Session.objects.all().delete()

    response = client.get(reverse("members:my_tier"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
