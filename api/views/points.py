"""Points: balance, ledger entries, earnings and adjustments."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from points import services as points
from points.models import Entry
from points.portal import points_summary

from .. import serializers
from ..models import Scope
from .common import (
    IDEMPOTENCY_PARAMETER,
    ApiView,
    idempotent,
    member_by_external_id,
    valid,
)


class PointsView(ApiView):
    required_scopes = {"GET": Scope.POINTS_READ}

    @extend_schema(
        operation_id="get_points",
        summary=_("Points balance, what can be spent now, and the next expiry"),
        responses={200: serializers.PointsOut},
    )
    def get(self, request, external_id: str):
        member = member_by_external_id(external_id)
        summary = points_summary(member.pk)
        data = (
            {"balance": 0, "spendable": 0, "next_expiry_at": None, "next_expiry_points": None}
            if summary is None
            else summary.__dict__
        )
        return Response(serializers.PointsOut(data).data)


class EntryCursor(CursorPagination):
    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500


class EntriesView(ApiView, generics.ListAPIView):
    required_scopes = {"GET": Scope.POINTS_READ}
    pagination_class = EntryCursor
    serializer_class = serializers.EntryOut
    queryset = Entry.objects.all()
    filterset_fields = {"kind": ["exact"], "created_at": ["gte", "lt"], "source": ["exact"]}

    def get_queryset(self):
        member = member_by_external_id(self.kwargs["external_id"])
        return Entry.objects.filter(account__member=member)

    @extend_schema(operation_id="list_points_entries", summary=_("Ledger entries, filtered"))
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


def _ledger_key(request) -> str:
    return f"api:{request.auth.pk}:{request.idempotency_key}"


class EarningsView(ApiView):
    required_scopes = {"POST": Scope.POINTS_WRITE}

    @extend_schema(
        operation_id="earn_points",
        summary=_("Give points (spendable at once)"),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=serializers.EarningIn,
        responses={201: serializers.EntryOut},
    )
    @idempotent
    def post(self, request, external_id: str):
        member = member_by_external_id(external_id)
        data = valid(serializers.EarningIn, request.data)
        entry = points.earn(
            member_id=member.pk,
            points=data["points"],
            source="api",
            source_ref=data["source_ref"] or request.auth.name,
            key=_ledger_key(request),
            reason=data["reason"],
        )
        return Response(serializers.EntryOut(entry).data, status=status.HTTP_201_CREATED)


class AdjustmentsView(ApiView):
    required_scopes = {"POST": Scope.POINTS_WRITE}

    @extend_schema(
        operation_id="adjust_points",
        summary=_("Correct a balance, with a reason (never below zero)"),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=serializers.AdjustmentIn,
        responses={201: serializers.EntryOut},
    )
    @idempotent
    def post(self, request, external_id: str):
        member = member_by_external_id(external_id)
        data = valid(serializers.AdjustmentIn, request.data)
        entry = points.adjust(
            member_id=member.pk,
            points=data["points"],
            reason=data["reason"],
            actor=request.user,
            key=_ledger_key(request),
        )
        return Response(serializers.EntryOut(entry).data, status=status.HTTP_201_CREATED)
