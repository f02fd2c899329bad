"""The admin's pages rendered with less work than Django's own, and the same for the operator:
the sidebar rendered once for what it shows, each row's link built without a URL lookup."""

import re
from urllib.parse import urlencode

from django.template.loader import get_template
from django.urls import reverse

from membership import services
from membership.models import Cause, Member
from tests.factories import MemberFactory, staff_with

MEMBERS = reverse("admin:membership_member_changelist")
ORDERS = reverse("admin:membership_order_changelist")


SIDEBAR = re.compile(r'<nav class="sticky" id="nav-sidebar".*?</nav>', re.S)


def sidebar(page) -> str:
    return SIDEBAR.search(page.content.decode())[0]


def django_sidebar(page) -> str:
    """admin/app_list.html as Django's nav_sidebar.html includes it, for this page."""
    return get_template("admin/app_list.html").render(
        {
            "app_list": page.context["available_apps"],
            "show_changelinks": False,
            "request": page.wsgi_request,
        }
    )


def placed_member(**kwargs) -> Member:
    member = MemberFactory(**kwargs)
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    return member


def test_the_sidebar_is_the_one_django_renders_the_first_time_and_after(programme, admin_client):
    first = admin_client.get(MEMBERS)
    again = admin_client.get(MEMBERS)

    assert django_sidebar(first) in sidebar(first)
    assert django_sidebar(again) in sidebar(again)


def test_the_sidebar_shows_each_user_only_what_they_may_see_whoever_came_first(
    programme, admin_client, client
):
    client.force_login(staff_with("view_member"))

    admins = sidebar(admin_client.get(MEMBERS))
    viewers = sidebar(client.get(MEMBERS))

    assert ORDERS in admins
    assert ORDERS not in viewers
    assert MEMBERS in viewers


def test_the_sidebar_marks_the_list_the_page_belongs_to(programme, admin_client):
    admin_client.get(ORDERS)

    members = sidebar(admin_client.get(MEMBERS))
    orders = sidebar(admin_client.get(ORDERS))

    assert f'<a href="{MEMBERS}" aria-current="page">' in members
    assert f'<a href="{ORDERS}" aria-current="page">' not in members
    assert f'<a href="{ORDERS}" aria-current="page">' in orders


def test_a_rows_link_leads_to_its_page_and_back_to_the_list_as_filtered(programme, admin_client):
    member = placed_member(name="王小明")
    change = reverse("admin:membership_member_change", args=[member.pk])

    plain = admin_client.get(MEMBERS).content.decode()
    searched = admin_client.get(MEMBERS, {"q": "王"}).content.decode()

    assert f'<a href="{change}">' in plain
    back = urlencode({"_changelist_filters": urlencode({"q": "王"})})
    assert f'<a href="{change}?{back}">' in searched
