"""What the API reads and writes. Input limits keep bad input a 400, never a database error."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from membership.forms import CalculatorForm
from membership.models import Member
from points.models import Entry

MAX_AMOUNT = 100_000_000  # NT$: the tier calculator's own ceiling, for every amount here
MAX_POINTS = 100_000_000
ID = {"max_length": 64}


class NamedRef(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class TierRef(NamedRef):
    rank = serializers.IntegerField()


# -- orders ----------------------------------------------------------------------------


class OrderIn(serializers.Serializer):
    order_id = serializers.CharField(help_text=_("The shop's order id."), **ID)
    member_external_id = serializers.CharField(**ID)
    amount = serializers.IntegerField(min_value=0, max_value=MAX_AMOUNT, help_text="NT$")
    placed_at = serializers.DateTimeField()
    channel = serializers.CharField(max_length=30, required=False, default="", allow_blank=True)


class OrderOut(serializers.Serializer):
    order_id = serializers.CharField(source="external_id")
    member_external_id = serializers.CharField(source="member.external_id", allow_null=True)
    amount = serializers.IntegerField()
    refunded_amount = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["paid", "cancelled"])
    placed_at = serializers.DateTimeField()
    created = serializers.BooleanField(help_text=_("False when the order was already recorded."))
    group = NamedRef(source="member.group", allow_null=True)
    tier = TierRef(source="member.tier", allow_null=True)


class RefundIn(serializers.Serializer):
    refund_id = serializers.CharField(help_text=_("The shop's refund id."), **ID)
    amount = serializers.IntegerField(min_value=1, max_value=MAX_AMOUNT, help_text="NT$")
    refunded_at = serializers.DateTimeField(required=False)


class RefundOut(serializers.Serializer):
    refund_id = serializers.CharField(source="external_id")
    order_id = serializers.CharField(source="order.external_id")
    amount = serializers.IntegerField()
    refunded_at = serializers.DateTimeField()
    order_refunded_amount = serializers.IntegerField(source="order.refunded_amount")


# -- members ---------------------------------------------------------------------------


class MemberIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    phone = serializers.CharField(max_length=20, required=False, default="", allow_blank=True)
    email = serializers.EmailField(required=False, default="", allow_blank=True)
    birthday = serializers.DateField(required=False, allow_null=True, default=None)
    language = serializers.ChoiceField(
        choices=Member.Language.choices, required=False, default=Member.Language.ZH_HANT
    )
    joined_at = serializers.DateTimeField(
        required=False, help_text=_("Only used when the member is created.")
    )

    def validate_birthday(self, value):
        if value is not None and not dt.date(1900, 1, 1) <= value <= timezone.localdate():
            raise serializers.ValidationError(_("Not a possible birthday."))
        return value


class NewMemberIn(MemberIn):
    external_id = serializers.CharField(**ID)


class MemberOut(serializers.Serializer):
    external_id = serializers.CharField()
    name = serializers.CharField()
    phone = serializers.CharField()
    email = serializers.CharField()
    birthday = serializers.DateField(allow_null=True)
    language = serializers.CharField()
    joined_at = serializers.DateTimeField()
    group = NamedRef(allow_null=True)
    tier = TierRef(allow_null=True)
    tier_since = serializers.DateTimeField(allow_null=True)
    next_review_on = serializers.DateField(allow_null=True)
    tags = serializers.SerializerMethodField()

    def get_tags(self, member) -> list[str]:
        return sorted(t.name for t in member.tags.all())


class ProgressOut(serializers.Serializer):
    next_tier = TierRef()
    needed = serializers.IntegerField(help_text=_("NT$ (or orders) still needed."))
    by = serializers.DateField(allow_null=True, help_text=_("When the window closes."))
    metric = serializers.CharField()
    percent = serializers.IntegerField()


class MemberDetailOut(MemberOut):
    explanation = serializers.DictField(help_text=_("Why this tier: the rules' reasoning."))
    progress = ProgressOut(allow_null=True)


class TagIn(serializers.Serializer):
    tag = serializers.CharField(max_length=50)


class TagsOut(serializers.Serializer):
    external_id = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    group = NamedRef(allow_null=True)
    tier = TierRef(allow_null=True)


# -- points ----------------------------------------------------------------------------


class PointsOut(serializers.Serializer):
    balance = serializers.IntegerField()
    spendable = serializers.IntegerField()
    next_expiry_at = serializers.DateTimeField(allow_null=True)
    next_expiry_points = serializers.IntegerField(allow_null=True)


class EntryOut(serializers.ModelSerializer):
    class Meta:
        model = Entry
        fields = ["id", "kind", "points", "source", "source_ref", "reason", "created_at"]


class EarningIn(serializers.Serializer):
    points = serializers.IntegerField(min_value=1, max_value=MAX_POINTS)
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    source_ref = serializers.CharField(max_length=100, required=False, default="")


class AdjustmentIn(serializers.Serializer):
    points = serializers.IntegerField(
        min_value=-MAX_POINTS, max_value=MAX_POINTS, help_text=_("Positive adds, negative takes.")
    )
    reason = serializers.CharField(max_length=200)


# -- the tier calculator ---------------------------------------------------------------


class CalculatorIn(serializers.Serializer):
    member_external_id = serializers.CharField(**ID)
    amount = serializers.IntegerField(min_value=0, max_value=MAX_AMOUNT, help_text="NT$")
    on = serializers.DateField()

    def validate(self, attrs):
        # The member page's calculator form holds the rule on dates; the API uses it too.
        form = CalculatorForm({"amount": attrs["amount"], "on": attrs["on"].isoformat()})
        if not form.is_valid():
            raise serializers.ValidationError(form.errors)
        if attrs["on"] > timezone.localdate() + dt.timedelta(days=366 * 5):
            raise serializers.ValidationError({"on": _("Choose a date within five years.")})
        return attrs


class CalculatorOut(serializers.Serializer):
    group = NamedRef(allow_null=True)
    tier = TierRef(allow_null=True, help_text=_("The tier the member would hold."))
    earned_tier = TierRef(allow_null=True)
    value = serializers.IntegerField(help_text=_("The qualifying spend (or orders) counted."))
    explanation = serializers.DictField()
