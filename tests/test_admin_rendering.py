"""The admin's pages rendered with less work than Django's own, and the same for the operator:
the list of apps built and the sidebar rendered once for what they show, each row's link
built without a URL lookup and its row read with the columns shown, an inline's hidden
counts written out."""

import re
from html.parser import HTMLParser
from urllib.parse import urlencode

from django.contrib.admin import site
from django.contrib.admin.sites import AdminSite
from django.db import connection
from django.forms.formsets import BaseFormSet
from django.forms.models import inlineformset_factory
from django.template.loader import get_template
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import conditional_escape

from membership import services
from membership.admin.common import QuickManagementFormSet
from membership.models import Cause, Member, TierHistory
from points.models import BirthdayRule
from tests.factories import MemberFactory, UserFactory, staff_with

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


def app_list_for(user) -> list:
    request = RequestFactory().get("/admin/")
    request.user = user
    return site.get_app_list(request)


def test_the_list_of_apps_is_the_one_django_builds_the_first_time_and_after(programme):
    operator = UserFactory(is_superuser=True)
    request = RequestFactory().get("/admin/")
    request.user = operator

    first, again = app_list_for(operator), app_list_for(operator)

    assert first == again == AdminSite.get_app_list(site, request)


def test_the_list_of_apps_follows_an_answer_read_from_the_database_at_once(programme):
    operator = UserFactory(is_superuser=True)
    add_rule = reverse("admin:points_birthdayrule_add")
    before = app_list_for(operator)

    BirthdayRule.objects.create(multiplier=2, cap=1000)
    after = app_list_for(operator)

    assert add_rule in str(before)
    assert add_rule not in str(after)  # one rule only: nothing left to add


def test_changing_a_pages_list_of_apps_leaves_the_next_pages_alone(programme):
    operator = UserFactory(is_superuser=True)
    first = app_list_for(operator)
    first[0]["models"].clear()

    assert app_list_for(operator)[0]["models"]


def tier_history_formset(*args, **kwargs):
    formset = inlineformset_factory(Member, TierHistory, fk_name="member", fields=["reason"])
    return type("FormSet", (QuickManagementFormSet, formset), {})(*args, **kwargs)


def test_an_inlines_hidden_counts_are_the_markup_django_renders(programme):
    member = placed_member()
    formset = tier_history_formset(instance=member)

    djangos = BaseFormSet.management_form.func(formset)

    assert str(formset.management_form) == str(djangos)
    assert conditional_escape(formset.management_form) == conditional_escape(djangos)
    assert f'value="{TierHistory.objects.filter(member=member).count()}"' in str(djangos)


def test_an_inlines_hidden_counts_posted_back_with_an_error_render_as_djangos(programme):
    member = placed_member()
    formset = tier_history_formset({"tierhistory_set-TOTAL_FORMS": "x"}, instance=member)

    assert str(formset.management_form) == str(BaseFormSet.management_form.func(formset))


def test_the_member_list_reads_its_rows_with_the_columns_it_shows_only(programme, admin_client):
    placed_member(name="王小明", birthday="1990-05-01")

    with CaptureQueriesContext(connection) as ctx:
        page = admin_client.get(MEMBERS)
    listed = [q["sql"] for q in ctx if '"membership_member"."email"' in q["sql"]]
    rows = next(sql for sql in listed if 'FROM "membership_member"' in sql)

    assert "王小明" in page.content.decode()
    assert '"membership_member"."name"' in rows
    assert '"membership_member"."birthday"' not in rows


class FormFields(HTMLParser):
    """What a browser posts from the page's form ``form_id``, as it was rendered."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.data = form_id, False, {}
        self.select = self.textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or "disabled" in a:
            return
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            ticked = a.get("type") in ("checkbox", "radio")
            if ticked and "checked" not in a:
                return
            self.data.setdefault(name, []).append(a.get("value", "on" if ticked else ""))
        elif tag == "select" and name:
            self.select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self.select and "selected" in a:
            self.data[self.select].append(a.get("value", ""))
        elif tag == "textarea" and name:
            self.textarea = name
            self.data[name] = [""]

    def handle_data(self, data):
        if self.textarea:
            self.data[self.textarea][0] += data

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None
        elif tag == "textarea":
            if self.textarea:
                self.data[self.textarea][0] = self.data[self.textarea][0].removeprefix("\n")
            self.textarea = None
        elif tag == "form":
            self.inside = False


def test_the_member_page_posted_back_as_rendered_saves_the_operators_change(
    programme, admin_client
):
    # given: a member's page, its inlines' hidden counts written by QuickManagementFormSet
    member = placed_member(name="王小明", phone="0912345678")
    url = reverse("admin:membership_member_change", args=[member.pk])
    form = FormFields("member_form")
    form.feed(admin_client.get(url).content.decode())
    assert any(name.endswith("-TOTAL_FORMS") for name in form.data)

    # when: the operator changes the phone and saves the form as the browser sends it
    form.data["phone"] = ["0987654321"]
    saved = admin_client.post(url, form.data)

    # then: saved, back to the list, the phone changed and the name as it was
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    member.refresh_from_db()
    assert (member.phone, member.name) == ("0987654321", "王小明")
