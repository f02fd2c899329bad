"""The points lists in a file (accounts, ledger entries) and the points configuration
(rewards, promotions, partner brands) by natural key. See membership.resources."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export import fields, widgets

from membership.resources import (
    LIST_SEPARATOR,
    ConfigResource,
    ListResource,
    LocalDateTimeWidget,
    TierWidget,
    YesNoWidget,
    tier_by_label,
)

from .models import SOURCE_LABELS, Account, Entry, Partner, PartnerBonus, Promotion, Reward

MEMBER_NUMBER = gettext_lazy("member number")


class AccountResource(ListResource):
    labels = {"member__external_id": MEMBER_NUMBER, "member__name": gettext_lazy("member")}
    select_related = ("member__tier",)

    class Meta:
        model = Account
        fields = ("member__external_id", "member__name", "member__tier", "balance", "shortfall")


class EntryResource(ListResource):
    labels = {
        "account__member__external_id": MEMBER_NUMBER,
        "account__member__name": gettext_lazy("member"),
    }
    select_related = ("account__member",)

    class Meta:
        model = Entry
        fields = (
            "created_at",
            "account__member__external_id",
            "account__member__name",
            "kind",
            "points",
            "shortfall",
            "source",
            "source_ref",
            "idempotency_key",
            "reason",
        )

    def dehydrate_source(self, entry: Entry) -> str:
        return str(SOURCE_LABELS.get(entry.source, entry.source))


class RewardResource(ConfigResource):
    tier = fields.Field(attribute="tier", widget=TierWidget())
    active = fields.Field(attribute="active", widget=YesNoWidget())

    class Meta:
        model = Reward
        fields = ("name", "points_cost", "stock", "tier", "months", "active")
        import_id_fields = ("name",)
        clean_model_instances = True

    def get_queryset(self):
        return super().get_queryset().select_related("tier__group")


class PromotionResource(ConfigResource):
    """A promotion is the same one when its name and start are: names repeat yearly."""

    starts_at = fields.Field(attribute="starts_at", widget=LocalDateTimeWidget())
    ends_at = fields.Field(attribute="ends_at", widget=LocalDateTimeWidget())

    class Meta:
        model = Promotion
        fields = ("name", "starts_at", "ends_at", "multiplier")
        import_id_fields = ("name", "starts_at")
        clean_model_instances = True


class BonusesWidget(widgets.Widget):
    """VIP bonuses, one a line: “全館 VIP · 金卡 = 10”."""

    def clean(self, value, row=None, **kwargs):
        bonuses = []
        for line in str(value or "").splitlines():
            if not line.strip():
                continue
            label, _sep, percent = line.rpartition("=")
            try:
                number = int(percent.strip().rstrip("%"))
            except ValueError:
                raise ValueError(
                    _("“%(line)s” is not a tier and a bonus like 全館 VIP · 金卡 = 10.")
                    % {"line": line.strip()}
                ) from None
            bonuses.append((tier_by_label(label.strip()), number))
        return bonuses


class PartnerResource(ConfigResource):
    min_tier = fields.Field(attribute="min_tier", widget=TierWidget())
    active = fields.Field(attribute="active", widget=YesNoWidget())
    bonuses = fields.Field(attribute="imported_bonuses", widget=BonusesWidget())

    class Meta:
        model = Partner
        fields = ("code", "name", "rate", "monthly_cap", "min_tier", "active", "bonuses")
        import_id_fields = ("code",)
        clean_model_instances = True

    def header(self, name: str) -> str:
        if name == "bonuses":
            return str(PartnerBonus._meta.verbose_name_plural)
        return super().header(name)

    def get_queryset(self):
        return (
            super()
            .get_queryset()
            .select_related("min_tier__group")
            .prefetch_related("bonuses__tier__group")
        )

    def dehydrate_bonuses(self, partner: Partner) -> str:
        return LIST_SEPARATOR.join(f"{b.tier} = {b.percent}" for b in partner.bonuses.all())

    def after_save_instance(self, instance, row, **kwargs):
        if not hasattr(instance, "imported_bonuses"):
            return  # no bonuses column: the partner keeps the ones it has
        PartnerBonus.objects.filter(partner=instance).delete()
        bonuses = [
            PartnerBonus(partner=instance, tier=tier, percent=percent)
            for tier, percent in instance.imported_bonuses
        ]
        for bonus in bonuses:
            bonus.full_clean(exclude=["partner"])
        PartnerBonus.objects.bulk_create(bonuses)
