"""The admin as the operator's tool: permissions, the audit log, the member page."""

import datetime as dt
import json

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from membership import services
from membership.models import AuditEntry, Cause, Member, Tier
from tests.factories import MemberFactory, OrderFactory, TierFactory, staff_with


def placed_member(**kwargs) -> Member:
    member = MemberFactory(**kwargs)
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    member.refresh_from_db()
    return member


def test_the_member_page_explains_why_the_member_holds_their_tier(programme, admin_client):
    member = MemberFactory()
    OrderFactory(member=member, amount=15_000)
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)

    page = admin_client.get(reverse("admin:membership_member_change", args=[member.pk]))

    text = page.content.decode()
    assert page.status_code == 200
    for fact in ["KOL 合作", "員工福利", "企業 VIP", "全館 VIP", "15,000", "10,000", "30,000"]:
        assert fact in text
    assert text.index("KOL 合作") < text.index("員工福利") < text.index("企業 VIP")


def test_staff_without_the_adjustment_permission_can_see_a_member_but_not_adjust_them(
    programme, client
):
    member = placed_member()
    client.force_login(staff_with("view_member"))

    page = client.get(reverse("admin:membership_member_change", args=[member.pk]))
    adjust = client.get(reverse("admin:membership_member_adjust_tier", args=[member.pk]))

    assert page.status_code == 200
    assert "adjust-tier" not in page.content.decode()
    assert adjust.status_code == 403


def test_the_adjustment_form_refuses_to_save_without_a_reason(programme, client):
    member = placed_member()
    client.force_login(staff_with("view_member", "adjust_tier"))

    response = client.post(
        reverse("admin:membership_member_adjust_tier", args=[member.pk]),
        {"tier": programme.tiers["金卡"].pk, "reason": "   "},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    member.refresh_from_db()
    assert member.tier.name == "一般會員"


def test_an_adjustment_in_the_admin_changes_the_tier_and_is_audited(programme, client):
    member = placed_member()
    operator = staff_with("view_member", "adjust_tier")
    client.force_login(operator)

    response = client.post(
        reverse("admin:membership_member_adjust_tier", args=[member.pk]),
        {"tier": programme.tiers["金卡"].pk, "reason": "門市補登", "locked_until": "2099-01-01"},
    )

    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.tier.name, member.locked_until) == ("金卡", dt.date(2099, 1, 1))
    entry = AuditEntry.objects.get(action="member.adjust_tier")
    assert (entry.actor, entry.reason) == (operator, "門市補登")


def test_nobody_may_add_change_or_delete_audit_entries_in_the_admin(admin_client):
    entry = services.record_audit(actor=None, action="test", object_repr="x", reason="r")

    add = admin_client.get(reverse("admin:membership_auditentry_add"))
    change = admin_client.post(
        reverse("admin:membership_auditentry_change", args=[entry.pk]), {"reason": "edited"}
    )
    delete = admin_client.post(
        reverse("admin:membership_auditentry_delete", args=[entry.pk]), {"post": "yes"}
    )

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    entry.refresh_from_db()
    assert entry.reason == "r"


@pytest.mark.postgres
def test_the_database_refuses_to_update_or_delete_audit_entries(db):
    entry = services.record_audit(actor=None, action="test", object_repr="x", reason="r")

    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()

    entry.refresh_from_db()
    assert entry.reason == "r"


def test_dragging_the_groups_is_audited_and_moves_members(
    programme, admin_client, django_capture_on_commit_callbacks
):
    member = placed_member()
    services.add_tag(member_id=member.pk, tag=programme.enterprise_tag)
    services.add_tag(member_id=member.pk, tag=programme.staff_tag)
    url = reverse("admin:membership_vipgroup_sortable_update")
    items = [[programme.kol.pk, 1], [programme.enterprise.pk, 2], [programme.staff.pk, 3]]

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url, json.dumps({"updatedItems": items}), content_type="application/json"
        )

    assert response.status_code == 200
    entry = AuditEntry.objects.get(action="vipgroup.reorder")
    assert entry.after["priority"][:3] == ["KOL 合作", "企業 VIP", "員工福利"]
    member.refresh_from_db()
    assert member.group == programme.enterprise


def test_a_tiers_benefit_changes_at_once_and_its_live_threshold_not_in_place(
    programme, admin_client, django_capture_on_commit_callbacks
):
    member = placed_member()
    OrderFactory(member=member, amount=9_000)
    silver = programme.tiers["銀卡"]
    form = {
        "group": silver.group_id,
        "rank": 2,
        "name": "銀卡",
        "badge_colour": "#9e9e9e",
        "upgrade_threshold": 8_000,
        "retention_threshold": 6_000,
        "discount_percent": "8.0",
        "points_per_100": 2,
        "birthday_perk": "",
        "upgrade_gift": "銀卡迎新禮",
        "benefits-TOTAL_FORMS": 0,
        "benefits-INITIAL_FORMS": 0,
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:membership_tier_change", args=[silver.pk]), form
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    entry = AuditEntry.objects.get(action="tier.change")
    assert entry.after["discount_percent"] == "8.0"
    assert entry.after["upgrade_threshold"] == 10_000  # a threshold changes through a draft
    member.refresh_from_db()
    assert member.tier.name == "一般會員"


def test_the_group_list_warns_past_four_tiers_in_a_group(programme, admin_client):
    TierFactory(group=programme.general, rank=4, name="白金卡", upgrade_threshold=60_000)
    TierFactory(group=programme.general, rank=5, name="鑽石", upgrade_threshold=100_000)

    page = admin_client.get(reverse("admin:membership_vipgroup_changelist"))

    assert "「全館 VIP」有 5 個等級" in page.content.decode()


def test_adding_a_tag_from_the_member_list_moves_the_selected_members(programme, admin_client):
    members = [placed_member() for _ in range(3)]

    admin_client.post(
        reverse("admin:membership_member_changelist"),
        {
            "action": "add_tag_action",
            "_selected_action": [m.pk for m in members[:2]],
            "tag": programme.enterprise_tag.pk,
            "reason": "B2B 名單",
        },
    )

    groups = [Member.objects.get(pk=m.pk).group for m in members]
    assert groups == [programme.enterprise, programme.enterprise, programme.general]
    assert AuditEntry.objects.filter(action="member.tags", reason="B2B 名單").count() == 2


def test_the_member_list_takes_the_same_number_of_queries_for_few_and_many_members(
    programme, admin_client
):
    def queries_for_list():
        with CaptureQueriesContext(connection) as ctx:
            assert (
                admin_client.get(reverse("admin:membership_member_changelist")).status_code == 200
            )
        return len(ctx)

    for _ in range(3):
        placed_member()
    few = queries_for_list()
    for _ in range(30):
        placed_member()

    assert queries_for_list() == few


def test_the_member_list_finds_a_member_by_phone_or_external_id(programme, admin_client):
    placed_member(name="陳大文", phone="0912345678", external_id="OLD-1")
    placed_member(name="林小美", phone="0987654321")

    by_phone = admin_client.get(reverse("admin:membership_member_changelist"), {"q": "0912345678"})
    by_id = admin_client.get(reverse("admin:membership_member_changelist"), {"q": "OLD-1"})

    assert "陳大文" in by_phone.content.decode()
    assert "林小美" not in by_phone.content.decode()
    assert "陳大文" in by_id.content.decode()


def test_recording_a_refund_in_the_admin_needs_the_refund_permission(programme, client):
    member = placed_member()
    order = services.record_order(
        member_id=member.pk, external_id="SO-9", amount=12_000, placed_at=timezone.now()
    ).order
    client.force_login(staff_with("view_order"))

    response = client.post(
        reverse("admin:membership_order_refund", args=[order.pk]),
        {"amount": 12_000, "external_id": "R-9"},
    )

    assert response.status_code == 403
    member.refresh_from_db()
    assert member.tier.name == "銀卡"


def test_a_refund_recorded_in_the_admin_re_ranks_and_is_audited(programme, client):
    member = placed_member()
    order = services.record_order(
        member_id=member.pk, external_id="SO-9", amount=12_000, placed_at=timezone.now()
    ).order
    client.force_login(staff_with("view_order", "add_refund"))

    client.post(
        reverse("admin:membership_order_refund", args=[order.pk]),
        {"amount": 12_000, "external_id": "R-9"},
    )

    member.refresh_from_db()
    assert member.tier.name == "一般會員"
    assert AuditEntry.objects.filter(action="order.refund").count() == 1


def test_every_admin_list_page_opens(programme, admin_client):
    placed_member()
    for model in [
        "member",
        "order",
        "vipgroup",
        "tier",
        "tag",
        "auditentry",
        "tierhistory",
        "giftissue",
    ]:
        response = admin_client.get(reverse(f"admin:membership_{model}_changelist"))
        assert response.status_code == 200, model


def test_tier_labels_are_unique_within_a_group(programme):
    with pytest.raises(IntegrityError), transaction.atomic():
        Tier.objects.create(
            group=programme.general, rank=9, name="銀卡", upgrade_threshold=1, retention_threshold=1
        )
