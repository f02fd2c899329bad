"""The programme's rules refuse nonsense: in the admin's forms, the drag-ordered list,
the models' validation and the database, and nothing changes when they do."""

import json
import re
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, models, transaction
from django.urls import reverse
from django.utils.html import escape

from membership.bounds import COLUMN_RANGES
from membership.models import AuditEntry, Tier, VipGroup
from membership.services import programme as programme_rules
from tests.factories import TierFactory, VipGroupFactory

PROJECT_APPS = ["membership", "points", "subscriptions", "b2b", "imports", "segments", "api"]


# --- posting the forms as the operator does ----------------------------------------


def group_form(group: VipGroup, **changes) -> dict:
    """The VIP group page as it is rendered, with the tiers inline, plus ``changes``.

    ``changes`` are group fields by name, or ``{tier name: {field: value}}`` for a row.
    """
    data = {
        "name": group.name,
        "description": group.description,
        "entry_tags": [t.pk for t in group.entry_tags.all()],
        "entry_amount": "" if group.entry_amount is None else group.entry_amount,
        "entry_requires": group.entry_requires,
        "metric": group.metric,
        "window": group.window,
        "review_period_months": group.review_period_months,
        "review_warning_days": group.review_warning_days,
    }
    if group.is_default:
        data["is_default"] = "on"
    tiers = list(group.tiers.order_by("rank"))
    data |= {
        "tiers-TOTAL_FORMS": len(tiers),
        "tiers-INITIAL_FORMS": len(tiers),
        "tiers-MIN_NUM_FORMS": 0,
        "tiers-MAX_NUM_FORMS": 1000,
    }
    for i, tier in enumerate(tiers):
        row = {
            "id": tier.pk,
            "group": group.pk,
            "rank": tier.rank,
            "name": tier.name,
            "upgrade_threshold": tier.upgrade_threshold,
            "retention_threshold": tier.retention_threshold,
            "discount_percent": tier.discount_percent,
            "points_per_100": tier.points_per_100,
        } | changes.pop(tier.name, {})
        data |= {f"tiers-{i}-{field}": value for field, value in row.items()}
    return data | changes


def tier_form(tier: Tier, **changes) -> dict:
    """A tier's own page as it is rendered (no benefit rows), plus ``changes``."""
    return {
        "group": tier.group_id,
        "rank": tier.rank,
        "name": tier.name,
        "badge_colour": tier.badge_colour,
        "upgrade_threshold": tier.upgrade_threshold,
        "retention_threshold": tier.retention_threshold,
        "discount_percent": tier.discount_percent,
        "points_per_100": tier.points_per_100,
        "birthday_perk": tier.birthday_perk,
        "upgrade_gift": tier.upgrade_gift,
        "benefits-TOTAL_FORMS": 0,
        "benefits-INITIAL_FORMS": 0,
        "benefits-MIN_NUM_FORMS": 0,
        "benefits-MAX_NUM_FORMS": 1000,
    } | changes


def post_group(client, group, data):
    return client.post(reverse("admin:membership_vipgroup_change", args=[group.pk]), data)


def post_tier(client, tier, data):
    return client.post(reverse("admin:membership_tier_change", args=[tier.pk]), data)


def drag(client, items):
    return client.post(
        reverse("admin:membership_vipgroup_sortable_update"),
        json.dumps({"updatedItems": items}),
        content_type="application/json",
    )


def thresholds(group) -> list[tuple[str, int, int]]:
    return list(
        group.tiers.order_by("rank").values_list("name", "upgrade_threshold", "retention_threshold")
    )


def priorities() -> list[tuple[str, int]]:
    return list(VipGroup.objects.order_by("priority", "pk").values_list("name", "priority"))


def errors_of(response) -> str:
    return " ".join(
        str(e)
        for e in [
            response.context["adminform"].form.errors,
            *[f.formset.errors for f in response.context["inline_admin_formsets"]],
            *[f.formset.non_form_errors() for f in response.context["inline_admin_formsets"]],
        ]
    )


# --- tier thresholds rise with rank --------------------------------------------------
# Live thresholds are a programme version's: they are edited on a draft's page, where the
# ladder rule applies to the draft's rows; the group and tier pages show them read-only.


def draft_form(draft, **changes) -> dict:
    """A draft's page as it is rendered, plus ``changes``: ``{tier name: {field: value}}``
    for a 全館 VIP threshold row, ``{"group:" + name: {field: value}}`` for a group rule."""
    data = {"name": draft.name}
    rules = list(draft.group_rules.select_related("group"))
    rows = list(draft.thresholds.select_related("tier__group"))
    for prefix, objects in (("group_rules", rules), ("thresholds", rows)):
        data |= {
            f"{prefix}-TOTAL_FORMS": len(objects),
            f"{prefix}-INITIAL_FORMS": len(objects),
            f"{prefix}-MIN_NUM_FORMS": 0,
            f"{prefix}-MAX_NUM_FORMS": 1000,
        }
    for i, r in enumerate(rules):
        row = {
            "id": r.pk,
            "version": draft.pk,
            "entry_amount": "" if r.entry_amount is None else r.entry_amount,
            "entry_requires": r.entry_requires,
            "metric": r.metric,
            "window": r.window,
            "review_period_months": r.review_period_months,
        } | changes.pop("group:" + r.group.name, {})
        data |= {f"group_rules-{i}-{field}": value for field, value in row.items()}
    for i, t in enumerate(rows):
        row = {
            "id": t.pk,
            "version": draft.pk,
            "upgrade_threshold": t.upgrade_threshold,
            "retention_threshold": t.retention_threshold,
        }
        if t.tier.group.is_default:
            row |= changes.pop(t.tier.name, {})
        data |= {f"thresholds-{i}-{field}": value for field, value in row.items()}
    assert not changes, changes
    return data


def post_draft(client, draft, data):
    return client.post(reverse("admin:membership_programmeversion_change", args=[draft.pk]), data)


def draft_thresholds(draft) -> list[tuple[str, int, int]]:
    return list(
        draft.thresholds.filter(tier__group__is_default=True)
        .order_by("tier__rank")
        .values_list("tier__name", "upgrade_threshold", "retention_threshold")
    )


@pytest.fixture
def draft(programme):
    from membership.services import versions

    return versions.create_draft(actor=None)


def threshold_errors(response) -> str:
    return str(response.context["inline_admin_formsets"][1].formset.errors)


def test_a_live_threshold_posted_on_the_group_page_changes_nothing(programme, admin_client):
    general = programme.general
    before = thresholds(general)

    response = post_group(
        admin_client, general, group_form(general, 金卡={"upgrade_threshold": 5_000})
    )

    assert response.status_code == 302
    assert thresholds(general) == before


def test_the_group_page_shows_live_thresholds_read_only_and_points_to_a_draft(
    programme, admin_client
):
    page = admin_client.get(
        reverse("admin:membership_vipgroup_change", args=[programme.general.pk])
    ).content.decode()

    assert re.search(r'<input[^>]*name="tiers-2-upgrade_threshold"[^>]*disabled', page)
    assert reverse("admin:membership_programmeversion_add") in page


def test_a_live_review_period_posted_on_the_group_page_changes_nothing(programme, admin_client):
    general = programme.general

    post_group(admin_client, general, group_form(general, review_period_months=3))

    general.refresh_from_db()
    assert general.review_period_months == 12


def test_a_gold_upgrade_threshold_below_silvers_is_refused_on_the_drafts_page(draft, admin_client):
    before = draft_thresholds(draft)

    response = post_draft(
        admin_client,
        draft,
        draft_form(draft, 金卡={"upgrade_threshold": 5_000, "retention_threshold": 4_000}),
    )

    assert response.status_code == 200
    assert "金卡的升等門檻（5,000）必須高於低一階的銀卡（10,000）" in threshold_errors(response)
    assert draft_thresholds(draft) == before


def test_the_drafts_page_shows_the_threshold_errors_at_the_top_of_the_page(draft, admin_client):
    response = post_draft(admin_client, draft, draft_form(draft, 金卡={"upgrade_threshold": 5_000}))

    page = response.content.decode()
    message = escape(response.context["inline_admin_formsets"][1].formset.non_form_errors()[0])
    assert "5,000" in message
    assert page.index(message) < page.index("field-review_period_months") < page.rindex(message)


def test_two_tiers_with_the_same_upgrade_threshold_are_refused(draft, admin_client):
    before = draft_thresholds(draft)

    response = post_draft(
        admin_client, draft, draft_form(draft, 金卡={"upgrade_threshold": 10_000})
    )

    assert response.status_code == 200
    assert draft_thresholds(draft) == before


def test_a_retention_threshold_that_falls_as_rank_rises_is_refused(draft, admin_client):
    before = draft_thresholds(draft)

    response = post_draft(
        admin_client, draft, draft_form(draft, 金卡={"retention_threshold": 7_000})
    )

    assert response.status_code == 200
    assert "金卡的續等門檻（7,000）不可低於低一階的銀卡（8,000）" in errors_of(response)
    assert draft_thresholds(draft) == before


def test_a_retention_threshold_above_the_upgrade_threshold_is_refused_beside_the_field(
    draft, admin_client
):
    response = post_draft(
        admin_client, draft, draft_form(draft, 銀卡={"retention_threshold": 12_000})
    )

    assert response.status_code == 200
    assert "retention_threshold" in threshold_errors(response)
    assert draft_thresholds(draft)[1] == ("銀卡", 10_000, 8_000)


def test_raising_every_tier_at_once_is_judged_on_the_new_values_together(draft, admin_client):
    response = post_draft(
        admin_client,
        draft,
        draft_form(
            draft,
            銀卡={"upgrade_threshold": 40_000, "retention_threshold": 30_000},
            金卡={"upgrade_threshold": 60_000, "retention_threshold": 50_000},
        ),
    )

    assert response.status_code == 302, errors_of(response)
    assert draft_thresholds(draft) == [
        ("一般會員", 0, 0),
        ("銀卡", 40_000, 30_000),
        ("金卡", 60_000, 50_000),
    ]


def test_a_review_period_of_0_months_is_refused(draft, admin_client):
    response = post_draft(
        admin_client, draft, draft_form(draft, **{"group:全館 VIP": {"review_period_months": 0}})
    )

    assert response.status_code == 200
    assert "review_period_months" in str(
        response.context["inline_admin_formsets"][0].formset.errors
    )
    assert draft.group_rules.get(group__name="全館 VIP").review_period_months == 12


def test_an_upgrade_threshold_beyond_its_column_is_refused_on_the_drafts_page(draft, admin_client):
    response = post_draft(admin_client, draft, draft_form(draft, 金卡={"upgrade_threshold": 2**63}))

    assert response.status_code == 200
    assert "upgrade_threshold" in threshold_errors(response)


def test_a_published_versions_thresholds_cannot_be_changed_by_a_post(draft, admin_client):
    from membership.services import versions

    live = versions.live_version()
    post_draft(admin_client, live, draft_form(live, 金卡={"upgrade_threshold": 90_000}))

    assert live.thresholds.get(tier__name="金卡").upgrade_threshold == 30_000


def test_a_new_group_whose_tiers_fall_with_rank_is_refused_and_nothing_is_saved(
    programme, admin_client
):
    rows = [("銅牌", 1, 20_000, 10_000), ("銀牌", 2, 15_000, 10_000)]
    data = {
        "name": "學生",
        "description": "",
        "entry_amount": "",
        "entry_requires": "either",
        "metric": "spend",
        "window": "rolling_12m",
        "review_period_months": 12,
        "review_warning_days": 30,
        "tiers-TOTAL_FORMS": len(rows),
        "tiers-INITIAL_FORMS": 0,
        "tiers-MIN_NUM_FORMS": 0,
        "tiers-MAX_NUM_FORMS": 1000,
    }
    for i, (name, rank, up, keep) in enumerate(rows):
        data |= {
            f"tiers-{i}-name": name,
            f"tiers-{i}-rank": rank,
            f"tiers-{i}-upgrade_threshold": up,
            f"tiers-{i}-retention_threshold": keep,
            f"tiers-{i}-discount_percent": "0",
            f"tiers-{i}-points_per_100": 1,
        }

    response = admin_client.post(reverse("admin:membership_vipgroup_add"), data)

    assert response.status_code == 200
    assert response.context["inline_admin_formsets"][0].formset.forms[1].errors["upgrade_threshold"]
    assert not VipGroup.objects.filter(name="學生").exists()


def test_a_new_tier_below_the_top_is_checked_against_the_saved_ones(programme, english):
    # given a diamond tier proposed above gold with a lower threshold
    diamond = programme_rules.Rung(
        key="new", rank=4, name="鑽石", upgrade_threshold=20_000, retention_threshold=0
    )

    # when / then
    with pytest.raises(ValidationError) as refused:
        programme_rules.check_tier_ladder(group=programme.general, proposed=[diamond])
    assert "must be above that of 金卡" in str(refused.value.message_dict["upgrade_threshold"])
    assert "cannot be below that of 金卡" in str(refused.value.message_dict["retention_threshold"])


# --- one tier's values ---------------------------------------------------------------


@pytest.mark.parametrize("discount", ["150", "-5", "100.5"])
def test_a_discount_outside_0_to_100_percent_is_refused(programme, admin_client, discount):
    silver = programme.tiers["銀卡"]

    response = post_tier(admin_client, silver, tier_form(silver, discount_percent=discount))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["discount_percent"]
    silver.refresh_from_db()
    assert silver.discount_percent == 0


def test_a_discount_outside_0_to_100_percent_is_refused_in_the_tiers_inline(
    programme, admin_client
):
    general = programme.general

    response = post_group(
        admin_client, general, group_form(general, 銀卡={"discount_percent": "150"})
    )

    assert response.status_code == 200
    silver_row = response.context["inline_admin_formsets"][0].formset.forms[1]
    assert silver_row.errors["discount_percent"]
    assert Tier.objects.get(pk=programme.tiers["銀卡"].pk).discount_percent == 0


def test_a_badge_colour_that_is_not_rrggbb_is_refused(programme, admin_client):
    silver = programme.tiers["銀卡"]

    response = post_tier(admin_client, silver, tier_form(silver, badge_colour="zzzzzzz"))

    assert response.status_code == 200
    assert "六位十六進位數字" in str(response.context["adminform"].form.errors)
    silver.refresh_from_db()
    assert silver.badge_colour == "#9e9e9e"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("discount_percent", Decimal("150")),
        ("discount_percent", Decimal("-5")),
        ("badge_colour", "zzzzzzz"),
    ],
)
def test_the_database_refuses_a_tier_the_rules_refuse(programme, field, value):
    silver = programme.tiers["銀卡"]

    with pytest.raises(IntegrityError), transaction.atomic():
        Tier.objects.filter(pk=silver.pk).update(**{field: value})


def test_the_database_refuses_a_review_period_of_0_months(programme):
    with pytest.raises(IntegrityError), transaction.atomic():
        VipGroup.objects.filter(pk=programme.general.pk).update(review_period_months=0)


# --- priority: numbers within the column, the default group last ---------------------


@pytest.mark.parametrize("priority", [4_294_967_301, 2**40, "abc", -1, 1.5, None])
def test_a_priority_that_is_not_a_whole_number_within_its_column_is_a_400(
    programme, admin_client, priority
):
    before = priorities()

    response = drag(admin_client, [[programme.enterprise.pk, priority]])

    assert response.status_code == 400
    assert priorities() == before
    assert not AuditEntry.objects.filter(action="vipgroup.reorder").exists()


def test_a_drag_request_that_cannot_be_read_is_a_400(programme, admin_client):
    before = priorities()

    response = admin_client.post(
        reverse("admin:membership_vipgroup_sortable_update"),
        "not json",
        content_type="application/json",
    )

    assert response.status_code == 400
    assert priorities() == before


def test_a_drag_naming_an_unknown_group_changes_nothing(programme, admin_client):
    before = priorities()

    response = drag(admin_client, [[programme.enterprise.pk, 1], [999_999, 2]])

    assert response.status_code == 400
    assert priorities() == before


def test_the_default_group_stays_last_when_dragged_to_the_top(programme, admin_client):
    items = [
        [programme.general.pk, 1],
        [programme.kol.pk, 2],
        [programme.staff.pk, 3],
        [programme.enterprise.pk, 4],
    ]

    response = drag(admin_client, items)

    assert response.status_code == 200
    assert priorities() == [("KOL 合作", 1), ("員工福利", 2), ("企業 VIP", 3), ("全館 VIP", 4)]


def test_a_group_dropped_below_the_default_group_is_checked_before_it(programme, admin_client):
    response = drag(admin_client, [[programme.general.pk, 3], [programme.kol.pk, 4]])

    assert response.status_code == 200
    assert priorities() == [("員工福利", 1), ("企業 VIP", 2), ("KOL 合作", 3), ("全館 VIP", 4)]


def test_a_group_added_in_the_admin_is_checked_before_the_default_group(programme, admin_client):
    response = admin_client.post(
        reverse("admin:membership_vipgroup_add"),
        {
            "name": "學生",
            "description": "",
            "entry_amount": "",
            "entry_requires": "either",
            "metric": "spend",
            "window": "rolling_12m",
            "review_period_months": 12,
            "review_warning_days": 30,
            "tiers-TOTAL_FORMS": 0,
            "tiers-INITIAL_FORMS": 0,
            "tiers-MIN_NUM_FORMS": 0,
            "tiers-MAX_NUM_FORMS": 1000,
        },
    )

    assert response.status_code == 302
    assert [name for name, _p in priorities()][-2:] == ["學生", "全館 VIP"]


def test_the_default_group_is_marked_as_checked_last_in_the_priority_list(programme, admin_client):
    page = admin_client.get(reverse("admin:membership_vipgroup_changelist"))

    text = page.content.decode()
    assert text.count('class="pinned"') == 1
    assert text.index('class="pinned"') > text.index("企業 VIP")


# --- integers within their columns ---------------------------------------------------


def integer_fields():
    for app in PROJECT_APPS:
        for model in apps.get_app_config(app).get_models():
            for field in model._meta.get_fields():
                if isinstance(field, models.IntegerField) and not isinstance(
                    field, models.AutoField
                ):
                    yield pytest.param(field, id=f"{model._meta.label}.{field.name}")


@pytest.mark.parametrize("field", list(integer_fields()))
def test_every_integer_field_is_validated_to_its_columns_range(field):
    # A field may allow less than its column (a setting of 1–60 months), never more.
    low, high = COLUMN_RANGES[field.get_internal_type()]

    with pytest.raises(ValidationError):
        field.run_validators(high + 1)
    with pytest.raises(ValidationError):
        field.run_validators(low - 1)


def test_a_priority_beyond_its_column_fails_the_groups_validation(db):
    group = VipGroupFactory.build(priority=2**40)

    with pytest.raises(ValidationError) as refused:
        group.full_clean()

    assert "priority" in refused.value.message_dict


def write_priority_with_update(group, value):
    VipGroup.objects.filter(pk=group.pk).update(priority=value)


def write_priority_with_bulk_update(group, value):
    # adminsortable2's drag endpoint wrote this way: CASE WHEN … THEN CAST(%s AS integer).
    group.priority = value
    VipGroup.objects.bulk_update([group], ["priority"])


def write_review_period_with_update(group, value):
    VipGroup.objects.filter(pk=group.pk).update(review_period_months=value)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("write", "value"),
    [
        (write_priority_with_update, 2**40),
        (write_priority_with_update, 4_294_967_301),
        (write_priority_with_bulk_update, 4_294_967_301),
        (write_review_period_with_update, 65_536 + 12),
    ],
)
def test_postgres_refuses_an_integer_beyond_its_column_even_past_the_validators(
    programme, write, value
):
    # given a connection that binds parameters on the server (the project's setting)
    before = priorities(), VipGroup.objects.get(pk=programme.kol.pk).review_period_months

    # when / then: an error, not the value's low bytes stored
    with pytest.raises(DataError, match="out of range"), transaction.atomic():
        write(VipGroup.objects.get(pk=programme.kol.pk), value)
    assert (priorities(), VipGroup.objects.get(pk=programme.kol.pk).review_period_months) == before


def test_a_tier_factory_ladder_outside_the_admin_is_reported_by_the_service(db):
    group = VipGroupFactory()
    TierFactory(group=group, rank=1, name="銅", upgrade_threshold=1_000)
    TierFactory(group=group, rank=2, name="銀", upgrade_threshold=500)

    problems = programme_rules.tier_ladder_problems(group=group)

    silver = group.tiers.get(name="銀").pk
    assert [(p.key, p.field) for p in problems] == [
        (silver, "upgrade_threshold"),
        (silver, "retention_threshold"),
    ]
