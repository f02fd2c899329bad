"""List filters for members (a segments FilterSet may replace this one later)."""

from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Cast
from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters

from membership.models import AuditEntry, Member, MemberTag


class MemberFilter(filters.FilterSet):
    group = filters.NumberFilter(field_name="group_id", help_text=_("VIP group id"))
    tier = filters.NumberFilter(field_name="tier_id", help_text=_("Tier id"))
    tag = filters.CharFilter(method="with_tag", max_length=50, help_text=_("Tag name"))
    updated_since = filters.IsoDateTimeFilter(
        method="updated_since_filter",
        help_text=_(
            "Members who joined, ordered, changed tier, or whose details or tags changed "
            "at or after this time."
        ),
    )

    class Meta:
        model = Member
        fields = ["group", "tier", "tag", "updated_since"]

    def with_tag(self, queryset, name, value):
        return queryset.filter(
            Exists(MemberTag.objects.filter(member=OuterRef("pk"), tag__name=value))
        )

    def updated_since_filter(self, queryset, name, value):
        # Members carry no updated-at column: a change is a join, an order, a tier move, or
        # an audited change of their details or tags (every API and admin edit is audited).
        audited = AuditEntry.objects.filter(
            object_type="membership.member",
            object_id=Cast(OuterRef("pk"), output_field=AuditEntry._meta.get_field("object_id")),
            created_at__gte=value,
        )
        return queryset.filter(
            Q(joined_at__gte=value)
            | Q(last_order_at__gte=value)
            | Q(tier_since__gte=value)
            | Exists(audited)
        )
