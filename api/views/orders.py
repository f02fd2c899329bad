"""Orders, refunds and cancellations from the shop."""

from __future__ import annotations

from types import SimpleNamespace

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from membership import services as membership
from membership.models import Member, Order

from .. import idempotency, serializers
from ..models import Scope
from .common import (
    IDEMPOTENCY_PARAMETER,
    SOURCE,
    ApiView,
    idempotent,
    shop_order,
    unknown_member,
    valid,
    valid_with,
)


def _order_out(order: Order, *, created: bool, evaluation=None) -> dict:
    order.created = created
    if evaluation is not None:
        # The member as this order's evaluation left them, under the order's lock: the
        # group and tier it wrote (a sub-account takes its holder's), without a query.
        out = SimpleNamespace(
            **{f: getattr(order, f) for f in ORDER_FIELDS},
            member=SimpleNamespace(
                external_id=order.member.external_id,
                group=evaluation.group,
                tier=evaluation.effective,
            ),
        )
        return ORDER_OUT.to_representation(out)
    # The member as the order left them (an order can lift the tier), in one query.
    order.member = Member.objects.select_related("group", "tier").get(pk=order.member_id)
    return ORDER_OUT.to_representation(order)


ORDER_FIELDS = ("external_id", "amount", "refunded_amount", "status", "placed_at", "created")
# One of each per process, for every order: a serializer deep-copies its declared fields
# into each new instance, which cost more than reading the order and writing the answer.
# Validating and representing keep nothing on the instance between calls.
ORDER_IN = serializers.OrderIn()
ORDER_OUT = serializers.OrderOut()


class OrdersView(ApiView):
    required_scopes = {"POST": Scope.ORDERS_WRITE}

    def default_idempotency_key(self, request) -> str:
        # Keyed by the shop's order id when the shop sends no key of its own.
        order_id = request.data.get("order_id") if isinstance(request.data, dict) else None
        return f"order:{order_id}" if isinstance(order_id, str) and order_id else ""

    @extend_schema(
        operation_id="record_order",
        summary=_("Record a paid order"),
        description=_(
            "Idempotent on the shop's order id: the Idempotency-Key defaults to order:<order_id>. "
            "201 when recorded, 200 when it already was."
        ),
        parameters=[
            OpenApiParameter(
                idempotency.HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                description=_("Defaults to order:<order_id>."),
            )
        ],
        request=serializers.OrderIn,
        responses={201: serializers.OrderOut, 200: serializers.OrderOut},
    )
    @idempotent
    def post(self, request):
        data = valid_with(ORDER_IN, request.data)
        try:
            # By the shop's member id, read with the member's lock: no look-up first.
            result = membership.record_order(
                member_external_id=data["member_external_id"],
                external_id=data["order_id"],
                amount=data["amount"],
                placed_at=data["placed_at"],
                source=SOURCE,
                channel=data["channel"],
            )
        except Member.DoesNotExist:
            raise unknown_member() from None
        return Response(
            _order_out(
                result.order,
                created=result.created,
                evaluation=result.evaluation.evaluation if result.evaluation else None,
            ),
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class RefundsView(ApiView):
    required_scopes = {"POST": Scope.ORDERS_WRITE}

    @extend_schema(
        operation_id="record_refund",
        summary=_("Refund part or all of an order"),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=serializers.RefundIn,
        responses={201: serializers.RefundOut},
    )
    @idempotent
    def post(self, request, order_id: str):
        order = shop_order(order_id)
        data = valid(serializers.RefundIn, request.data)
        refund = membership.record_refund(
            order_id=order.pk,
            external_id=data["refund_id"],
            amount=data["amount"],
            refunded_at=data.get("refunded_at"),
        )
        refund.order.refresh_from_db(fields=["refunded_amount"])
        return Response(serializers.RefundOut(refund).data, status=status.HTTP_201_CREATED)


class CancellationView(ApiView):
    required_scopes = {"POST": Scope.ORDERS_WRITE}

    @extend_schema(
        operation_id="cancel_order",
        summary=_("Cancel an order: it no longer counts"),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=None,
        responses={200: serializers.OrderOut},
    )
    @idempotent
    def post(self, request, order_id: str):
        order = membership.cancel_order(order_id=shop_order(order_id).pk)
        return Response(_order_out(order, created=False))
