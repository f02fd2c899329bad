"""The operator's admin forms, posted as the operator would: orders, enterprises, search."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from b2b import services as b2b
from b2b.models import Enterprise, Role, SubAccount
from membership import services
from membership.management.commands.seed_demo import operator_role
from membership.models import Cause, Member, Order
from tests.factories import MemberFactory


@pytest.fixture
def operator_client(demo, client):
    user = get_user_model().objects.create_user("operator", password="x", is_staff=True)
    user.groups.add(operator_role())
    client.force_login(user)
    return client


def placed(**kwargs) -> Member:
    member = MemberFactory(**kwargs)
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    return member


def inline(prefix: str, rows: list[dict], initial: int = 0) -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": len(rows),
        f"{prefix}-INITIAL_FORMS": initial,
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }
    for i, row in enumerate(rows):
        data.update({f"{prefix}-{i}-{k}": v for k, v in row.items()})
    return data


def enterprise_form(master, rows=(), **details) -> dict:
    return {
        "name": "台灣積體電路",
        "business_id": "22099131",
        "master": master.pk,
        **details,
        **inline("sub_accounts", list(rows)),
    }


def order_form(member) -> dict:
    now = timezone.localtime()
    return {
        "member": member.pk,
        "source": "shop",
        "external_id": "A-1001",
        "channel": "web",
        "amount": "12000",
        "placed_at_0": now.strftime("%Y-%m-%d"),
        "placed_at_1": now.strftime("%H:%M:%S"),
    }


def test_an_operator_adds_an_order_and_the_member_is_ranked_at_once(operator_client):
    member = placed()

    response = operator_client.post(reverse("admin:membership_order_add"), order_form(member))

    assert response.status_code == 302
    order = Order.objects.get(external_id="A-1001")
    member.refresh_from_db()
    assert (order.amount, member.tier.name) == (12_000, "銀卡")
    assert LogEntry.objects.get(object_id=str(order.pk)).is_addition()


def test_an_operator_refunds_part_of_an_order_from_its_page(operator_client):
    member = placed()
    operator_client.post(reverse("admin:membership_order_add"), order_form(member))
    order = Order.objects.get(external_id="A-1001")

    response = operator_client.post(
        reverse("admin:membership_order_refund", args=[order.pk]),
        {"amount": "3000", "external_id": "R-1"},
    )

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.refunded_amount == 3_000


def test_an_operator_creates_an_enterprise_with_two_sub_accounts(operator_client):
    master, buyer, finance = placed(), placed(), placed()
    roles = list(Role.objects.order_by("id")[:2])

    response = operator_client.post(
        reverse("admin:b2b_enterprise_add"),
        enterprise_form(
            master,
            [
                {"member": buyer.pk, "role": roles[0].pk},
                {"member": finance.pk, "role": roles[1].pk},
            ],
        ),
    )

    assert response.status_code == 302
    enterprise = Enterprise.objects.get(business_id="22099131")
    assert enterprise.master == master
    assert set(enterprise.sub_accounts.values_list("member", flat=True)) == {buyer.pk, finance.pk}
    buyer.refresh_from_db()
    assert buyer.tier_holder_id == master.pk
    message = LogEntry.objects.get(object_id=str(enterprise.pk)).get_change_message()
    assert message.count("子帳號") == 2


def test_a_sub_account_cannot_become_a_master_and_the_form_says_why(operator_client):
    other = b2b.create_enterprise(
        master=placed(), actor=None, name="甲公司", business_id="04595257"
    )
    sub = placed(name="林小美")
    b2b.add_sub_account(enterprise=other, member=sub, role=Role.objects.first(), actor=None)

    response = operator_client.post(reverse("admin:b2b_enterprise_add"), enterprise_form(sub))

    assert response.status_code == 200
    assert "林小美" in " ".join(response.context["adminform"].form.errors["master"])
    assert not Enterprise.objects.filter(business_id="22099131").exists()


def test_a_master_offered_as_a_sub_account_is_refused_on_its_row_and_nothing_saves(
    operator_client,
):
    other_master = placed(name="陳大文")
    b2b.create_enterprise(master=other_master, actor=None, name="甲公司", business_id="04595257")
    master, buyer = placed(), placed()
    role = Role.objects.first()

    response = operator_client.post(
        reverse("admin:b2b_enterprise_add"),
        enterprise_form(
            master,
            [{"member": buyer.pk, "role": role.pk}, {"member": other_master.pk, "role": role.pk}],
        ),
    )

    assert response.status_code == 200
    rows = response.context["inline_admin_formsets"][0].formset.forms
    assert "陳大文" in " ".join(rows[1].errors["member"])
    assert not Enterprise.objects.filter(business_id="22099131").exists()
    assert not SubAccount.objects.filter(member=buyer).exists()


def test_an_operator_removes_a_sub_account_by_ticking_delete(operator_client):
    enterprise = b2b.create_enterprise(
        master=placed(), actor=None, name="台灣積體電路", business_id="22099131"
    )
    buyer = placed()
    sub = b2b.add_sub_account(
        enterprise=enterprise, member=buyer, role=Role.objects.first(), actor=None
    )
    form = {
        "name": "台灣積體電路",
        "business_id": "22099131",
        **inline(
            "sub_accounts",
            [
                {
                    "id": sub.pk,
                    "enterprise": enterprise.pk,
                    "member": buyer.pk,
                    "role": sub.role_id,
                    "DELETE": "on",
                }
            ],
            initial=1,
        ),
    }

    response = operator_client.post(
        reverse("admin:b2b_enterprise_change", args=[enterprise.pk]), form
    )

    assert response.status_code == 302
    assert not SubAccount.objects.filter(member=buyer).exists()
    buyer.refresh_from_db()
    assert buyer.tier_holder_id is None


@pytest.mark.parametrize("typed", ["0912-345-678", "+886 912 345 678", "0912 345678"])
def test_member_search_finds_a_phone_however_it_is_typed(operator_client, typed):
    member = placed(phone="0912345678", name="王小明")
    placed(phone="0922000111")

    response = operator_client.get(reverse("admin:membership_member_changelist"), {"q": typed})

    assert list(response.context["cl"].result_list) == [member]


def test_member_search_matches_an_e_mail_in_any_case(operator_client):
    member = placed(email="Xiaoming@Example.com")

    response = operator_client.get(
        reverse("admin:membership_member_changelist"), {"q": "xiaoming@example.COM"}
    )

    assert list(response.context["cl"].result_list) == [member]


def test_the_master_picker_autocompletes_members_by_typed_phone(operator_client):
    member = placed(phone="0912345678", name="王小明")

    response = operator_client.get(
        reverse("admin:autocomplete"),
        {
            "app_label": "b2b",
            "model_name": "enterprise",
            "field_name": "master",
            "term": "0912-345-678",
        },
    )

    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [str(member.pk)]


def test_every_member_picker_is_an_autocomplete(operator_client):
    pages = {
        reverse("admin:membership_order_add"): "member",
        reverse("admin:b2b_enterprise_add"): "master",
    }

    for url, field in pages.items():
        text = operator_client.get(url).content.decode()
        assert f'name="{field}"' in text
        assert "admin-autocomplete" in text


def test_admin_links_read_xiugai_not_the_language_switchers_word(operator_client):
    member = placed()

    index = operator_client.get(reverse("admin:index")).content.decode()
    page = operator_client.get(reverse("admin:membership_member_change", args=[member.pk]))

    assert 'aria-describedby="b2b-enterprise">修改</a>' in index
    assert ">切換<" not in index
    assert "修改 會員" in page.content.decode()


def test_an_operator_swaps_the_member_of_a_sub_account_row(operator_client):
    enterprise = b2b.create_enterprise(
        master=placed(), actor=None, name="台灣積體電路", business_id="22099131"
    )
    leaving, joining = placed(), placed()
    sub = b2b.add_sub_account(
        enterprise=enterprise, member=leaving, role=Role.objects.first(), actor=None
    )
    row = {"id": sub.pk, "enterprise": enterprise.pk, "member": joining.pk, "role": sub.role_id}
    form = {
        "name": "台灣積體電路",
        "business_id": "22099131",
        **inline("sub_accounts", [row], initial=1),
    }

    response = operator_client.post(
        reverse("admin:b2b_enterprise_change", args=[enterprise.pk]), form
    )

    assert response.status_code == 302
    members = set(enterprise.sub_accounts.values_list("member", flat=True))
    assert members == {joining.pk}
    leaving.refresh_from_db()
    assert leaving.tier_holder_id is None
