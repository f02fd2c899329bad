"""API keys in the admin: made with a form, shown once, revoked by an action, last use shown."""

import pytest
from django.contrib.auth import get_user_model

from api.keys import KEY_PREFIX, find_api_key, revoke_api_key
from api.models import ApiKey, Scope
from membership.models import AuditEntry
from tests.api_helpers import key_client
from tests.factories import MemberFactory, staff_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = staff_with("add_apikey", "change_apikey", "view_apikey")
    client.force_login(user)
    return user


def test_an_operator_makes_a_key_and_sees_it_once(client, operator):
    response = client.post(
        "/admin/api/apikey/add/",
        {"name": "Cyberbiz", "scopes": [Scope.ORDERS_WRITE, Scope.MEMBERS_READ]},
    )

    key = ApiKey.objects.get(name="Cyberbiz")
    plaintext = response.context["plaintext"]
    assert response.status_code == 200
    assert plaintext in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert find_api_key(plaintext) == key
    assert key.scopes == [Scope.MEMBERS_READ, Scope.ORDERS_WRITE]
    assert key.created_by == operator
    # The secret is what follows the prefix (it may itself hold an underscore).
    secret = plaintext[len(KEY_PREFIX) :].partition("_")[2]
    assert secret not in client.get(f"/admin/api/apikey/{key.pk}/change/").content.decode()


def test_a_key_without_scopes_is_refused_by_the_form(client, operator):
    response = client.post("/admin/api/apikey/add/", {"name": "POS", "scopes": []})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["scopes"]
    assert not ApiKey.objects.exists()


def test_revoking_keys_from_the_list_stops_them_at_once(client, operator):
    api, new = key_client(Scope.MEMBERS_READ)

    response = client.post(
        "/admin/api/apikey/",
        {"action": "revoke", "_selected_action": [new.api_key.pk]},
        follow=True,
    )

    assert "已撤銷 1 把 API 金鑰" in response.content.decode()
    assert ApiKey.objects.get(pk=new.api_key.pk).revoked_at is not None
    assert api.get("/api/v1/members/").status_code == 401
    assert AuditEntry.objects.filter(action="api_key.revoke", actor=operator).exists()


def test_the_key_list_shows_when_each_key_was_last_used(client, operator):
    api, new = key_client(Scope.MEMBERS_READ, name="POS")
    api.get("/api/v1/members/")

    response = client.get("/admin/api/apikey/")

    used = ApiKey.objects.get(pk=new.api_key.pk).last_used_at
    assert used is not None
    assert "POS" in response.content.decode()
    assert response.context["cl"].result_list[0].last_used_at == used


def test_a_staff_member_without_the_permission_cannot_make_keys(client):
    client.force_login(get_user_model().objects.create_user("clerk", is_staff=True))

    response = client.post("/admin/api/apikey/add/", {"name": "x", "scopes": [Scope.ORDERS_WRITE]})

    assert response.status_code == 403
    assert not ApiKey.objects.exists()


def test_an_operator_sees_a_shops_retries_and_their_answers_read_only(client):
    client.force_login(staff_with("view_idempotencyrecord"))
    MemberFactory(external_id="C-1")
    api, _new = key_client(Scope.POINTS_WRITE)
    for _ in range(2):
        api.post(
            "/api/v1/members/C-1/points/earnings/",
            {"points": 1},
            format="json",
            HTTP_IDEMPOTENCY_KEY="retry-1",
        )

    response = client.get("/admin/api/idempotencyrecord/")

    rows = [(r.key, r.status) for r in response.context["cl"].result_list]
    assert rows == [("retry-1", 201)]
    assert client.get("/admin/api/idempotencyrecord/add/").status_code == 403


def test_a_keys_own_page_shows_it_with_a_revoke_button_and_no_save(client, operator):
    _api, new = key_client(Scope.MEMBERS_READ, name="POS")

    response = client.get(f"/admin/api/apikey/{new.api_key.pk}/change/")

    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()
    assert "撤銷這把金鑰" in response.content.decode()


def test_posting_a_keys_page_is_refused_and_changes_nothing(client, operator):
    _api, new = key_client(Scope.MEMBERS_READ, name="POS")

    response = client.post(f"/admin/api/apikey/{new.api_key.pk}/change/", {"name": "renamed"})

    assert response.status_code == 403
    assert ApiKey.objects.get(pk=new.api_key.pk).name == "POS"


def test_the_revoke_button_asks_first_and_changes_nothing_yet(client, operator):
    api, new = key_client(Scope.MEMBERS_READ, name="POS")

    response = client.get(f"/admin/api/apikey/{new.api_key.pk}/revoke/")

    assert "都會收到 401" in response.content.decode()
    assert ApiKey.objects.get(pk=new.api_key.pk).revoked_at is None
    assert api.get("/api/v1/members/").status_code == 200


def test_confirming_the_revocation_stops_the_key_at_once(client, operator):
    api, new = key_client(Scope.MEMBERS_READ, name="POS")

    response = client.post(f"/admin/api/apikey/{new.api_key.pk}/revoke/", follow=True)

    assert "已撤銷 POS" in response.content.decode()
    assert api.get("/api/v1/members/").status_code == 401
    assert AuditEntry.objects.filter(action="api_key.revoke", actor=operator).exists()


def test_confirming_again_after_a_revocation_says_so_and_records_nothing(client, operator):
    _api, new = key_client(Scope.MEMBERS_READ, name="POS")
    revoke_api_key(api_key_id=new.api_key.pk, actor=operator)

    response = client.post(f"/admin/api/apikey/{new.api_key.pk}/revoke/", follow=True)

    assert "先前已撤銷" in response.content.decode()
    assert AuditEntry.objects.filter(action="api_key.revoke").count() == 1


def test_revoking_a_key_that_does_not_exist_is_not_found(client, operator):
    assert client.post("/admin/api/apikey/999999/revoke/").status_code == 404


def test_a_staff_member_who_may_only_view_keys_sees_no_revoke_button(client):
    client.force_login(staff_with("view_apikey"))
    _api, new = key_client(Scope.MEMBERS_READ)

    response = client.get(f"/admin/api/apikey/{new.api_key.pk}/change/")

    assert response.status_code == 200
    assert "撤銷這把金鑰" not in response.content.decode()


def test_a_staff_member_who_may_only_view_keys_cannot_revoke_one(client):
    client.force_login(staff_with("view_apikey"))
    _api, new = key_client(Scope.MEMBERS_READ)

    response = client.post(f"/admin/api/apikey/{new.api_key.pk}/revoke/")

    assert response.status_code == 403
    assert ApiKey.objects.get(pk=new.api_key.pk).revoked_at is None


def test_a_key_is_never_deleted_only_revoked(client):
    client.force_login(staff_with("view_apikey", "change_apikey", "delete_apikey"))
    _api, new = key_client(Scope.MEMBERS_READ)

    response = client.get(f"/admin/api/apikey/{new.api_key.pk}/delete/")

    assert response.status_code == 403
    assert ApiKey.objects.filter(pk=new.api_key.pk).exists()


def test_the_key_list_names_scopes_and_status_in_words(client, operator):
    key_client(Scope.ORDERS_WRITE, Scope.MEMBERS_READ, name="Cyberbiz")

    page = client.get("/admin/api/apikey/").content.decode()

    assert "傳送訂單、退款與取消" in page
    assert "orders:write" not in page
    assert "使用中" in page


@pytest.mark.parametrize(("status", "listed"), [("active", ["POS"]), ("revoked", ["Old shop"])])
def test_the_status_filter_lists_keys_in_use_or_revoked(client, operator, status, listed):
    key_client(Scope.MEMBERS_READ, name="POS")
    _api, old = key_client(Scope.MEMBERS_READ, name="Old shop")
    revoke_api_key(api_key_id=old.api_key.pk, actor=operator)

    response = client.get(f"/admin/api/apikey/?status={status}")

    assert [k.name for k in response.context["cl"].result_list] == listed


def test_revoking_keys_already_revoked_says_nothing_changed(client, operator):
    _api, new = key_client(Scope.MEMBERS_READ)
    revoke_api_key(api_key_id=new.api_key.pk, actor=operator)

    response = client.post(
        "/admin/api/apikey/",
        {"action": "revoke", "_selected_action": [new.api_key.pk]},
        follow=True,
    )

    assert "所選的 API 金鑰都已撤銷，沒有變更" in response.content.decode()
    assert AuditEntry.objects.filter(action="api_key.revoke").count() == 1
