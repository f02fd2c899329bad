"""The tier calculator."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from membership.models import Member
from membership.selectors import calculate_tier

from .. import serializers
from ..models import Scope
from .common import (
    ApiView,
    unknown_member,
    valid,
)


class CalculatorView(ApiView):
    required_scopes = {"POST": Scope.MEMBERS_READ}

    @extend_schema(
        operation_id="calculate_tier",
        summary=_("The tier a member would hold after spending an amount by a date"),
        description=_("Writes nothing, so it needs no Idempotency-Key."),
        request=serializers.CalculatorIn,
        responses={200: serializers.CalculatorOut},
    )
    def post(self, request):
        data = valid(serializers.CalculatorIn, request.data)
        member = Member.objects.select_related("tier_holder").filter(
            external_id=data["member_external_id"]
        )
        if not member:
            raise unknown_member()
        ev = calculate_tier(member[0], amount=data["amount"], on=data["on"])
        return Response(
            serializers.CalculatorOut(
                {
                    "group": ev.group,
                    "tier": ev.effective,
                    "earned_tier": ev.earned,
                    "value": ev.value,
                    "explanation": ev.explanation(),
                }
            ).data
        )
