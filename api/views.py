"""The shop's API, version 1. Every write goes through the services; nothing here is a rule."""

from __future__ import annotations

import functools
import json

from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from membership import services as membership
from membership.models import Member, Order, Tag
from membership.selectors import calculate_tier, member_dashboard
from points import services as points
from points.models import Entry
from points.portal import points_summary

from . import idempotency, serializers
from .filters import MemberFilter
from .models import Scope

SOURCE = "shop"  # the shop's orders, as the order import records them

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    idempotency.HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description=_(
        "A unique key per operation (e.g. a UUID), at most 100 characters. The first "
        "answer is kept 30 days and replayed for the same key."
    ),
)


def idempotent(handler):
    """Run a POST under its Idempotency-Key (see api/idempotency.py for the rules)."""

    @functools.wraps(handler)
    def run(self, request, *args, **kwargs):
        key = request.headers.get(idempotency.HEADER, "").strip()
        if not key:
            key = self.default_idempotency_key(request)
        if not key or len(key) > idempotency.MAX_KEY_LENGTH:
            raise exceptions.ValidationError(
                {idempotency.HEADER: [_("Send an Idempotency-Key header of 1 to 100 characters.")]}
            )
        found = idempotency.claim(
            api_key=request.auth,
            key=key,
            fingerprint=idempotency.fingerprint(request.method, request.path, request.body),
        )
        if isinstance(found, idempotency.Replay):
            return _replay(found)
        request.idempotency_key = key
        try:
            with transaction.atomic():
                response = handler(self, request, *args, **kwargs)
                idempotency.complete(found, status=response.status_code, body=_json(response))
            return response
        except Exception as exc:
            try:
                response = self.handle_exception(exc)
            except Exception:
                idempotency.release(found)
                raise
            if getattr(response, "data", {}).get("type", "").endswith(":refused"):
                # The endpoint ran and a rule refused: the same request gets the same answer.
                idempotency.complete(found, status=response.status_code, body=_json(response))
            else:
                idempotency.release(found)
            return response

    return run


def _json(response: Response):
    return json.loads(JSONRenderer().render(response.data))


def _replay(found: idempotency.Replay) -> Response:
    content_type = "application/problem+json" if found.status >= 400 else None
    return Response(
        found.body,
        status=found.status,
        headers={"Idempotent-Replayed": "true"},
        content_type=content_type,
    )


def member_by_external_id(external_id: str, queryset=None) -> Member:
    if "\x00" in external_id:
        raise Http404
    return get_object_or_404(
        queryset if queryset is not None else Member.objects.all(), external_id=external_id
    )


def shop_order(order_id: str) -> Order:
    if "\x00" in order_id:
        raise Http404
    return get_object_or_404(
        Order.objects.select_related("member__group", "member__tier"),
        source=SOURCE,
        external_id=order_id,
    )


def unknown_member(field: str = "member_external_id"):
    return exceptions.ValidationError({field: [_("No member has this external id.")]})


class ApiView(APIView):
    required_scopes: dict[str, str] = {}

    def default_idempotency_key(self, request) -> str:
        return ""


# -- orders ----------------------------------------------------------------------------


def _order_out(order: Order, *, created: bool) -> dict:
    order.created = created
    # The member as the order left them (an order can lift the tier), in one query.
    order.member = Member.objects.select_related("group", "tier").get(pk=order.member_id)
    return serializers.OrderOut(order).data


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
        data = _valid(serializers.OrderIn, request.data)
        member = Member.objects.filter(external_id=data["member_external_id"]).first()
        if member is None:
            raise unknown_member()
        result = membership.record_order(
            member_id=member.pk,
            external_id=data["order_id"],
            amount=data["amount"],
            placed_at=data["placed_at"],
            source=SOURCE,
            channel=data["channel"],
        )
        return Response(
            _order_out(result.order, created=result.created),
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
        data = _valid(serializers.RefundIn, request.data)
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


# -- members ---------------------------------------------------------------------------

MEMBERS = Member.objects.select_related("group", "tier").prefetch_related("tags")


class MemberCursor(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500


def _member_detail(member: Member) -> dict:
    dash = member_dashboard(member)
    member.explanation = dash.evaluation.explanation()
    member.progress = dash.progress
    return serializers.MemberDetailOut(member).data


def _upsert(request, external_id: str) -> Response:
    data = _valid(serializers.MemberIn, request.data)
    result = membership.upsert_member(
        external_id=external_id,
        name=data["name"],
        phone=data["phone"],
        email=data["email"],
        birthday=data["birthday"],
        language=data["language"],
        joined_at=data.get("joined_at"),
        actor=request.user,
    )
    member = MEMBERS.get(pk=result.member.pk)
    return Response(
        _member_detail(member),
        status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
    )


class MembersView(ApiView, generics.ListAPIView):
    required_scopes = {"GET": Scope.MEMBERS_READ, "POST": Scope.MEMBERS_WRITE}
    queryset = MEMBERS
    filterset_class = MemberFilter
    pagination_class = MemberCursor
    serializer_class = serializers.MemberOut

    @extend_schema(operation_id="list_members", summary=_("List members, filtered"))
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="upsert_member_by_post",
        summary=_("Create or update a member by external id"),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=serializers.NewMemberIn,
        responses={201: serializers.MemberDetailOut, 200: serializers.MemberDetailOut},
    )
    @idempotent
    def post(self, request):
        external_id = _valid(serializers.NewMemberIn, request.data)["external_id"]
        return _upsert(request, external_id)


class MemberView(ApiView):
    required_scopes = {"GET": Scope.MEMBERS_READ, "PUT": Scope.MEMBERS_WRITE}

    @extend_schema(
        operation_id="get_member",
        summary=_("A member: group, tier, why this tier, progress to the next"),
        responses={200: serializers.MemberDetailOut},
    )
    def get(self, request, external_id: str):
        return Response(_member_detail(member_by_external_id(external_id, MEMBERS)))

    @extend_schema(
        operation_id="upsert_member",
        summary=_("Create or update a member by external id"),
        request=serializers.MemberIn,
        responses={201: serializers.MemberDetailOut, 200: serializers.MemberDetailOut},
    )
    def put(self, request, external_id: str):
        if "\x00" in external_id or len(external_id) > 64:
            raise exceptions.ValidationError({"external_id": [_("At most 64 characters.")]})
        with transaction.atomic():
            return _upsert(request, external_id)


def _tags_out(member_id: int) -> dict:
    member = MEMBERS.get(pk=member_id)
    return serializers.TagsOut(
        {
            "external_id": member.external_id,
            "tags": sorted(t.name for t in member.tags.all()),
            "group": member.group,
            "tier": member.tier,
        }
    ).data


class MemberTagsView(ApiView):
    required_scopes = {"POST": Scope.MEMBERS_WRITE}

    @extend_schema(
        operation_id="add_member_tag",
        summary=_("Add a tag (it may move the member to another group)"),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=serializers.TagIn,
        responses={200: serializers.TagsOut},
    )
    @idempotent
    def post(self, request, external_id: str):
        member = member_by_external_id(external_id)
        name = _valid(serializers.TagIn, request.data)["tag"]
        tag = Tag.objects.filter(name=name).first()
        if tag is None:
            raise exceptions.ValidationError({"tag": [_("No tag has this name.")]})
        membership.add_tag(member_id=member.pk, tag=tag, reason=request.user.username)
        return Response(_tags_out(member.pk))


class MemberTagView(ApiView):
    required_scopes = {"DELETE": Scope.MEMBERS_WRITE}

    @extend_schema(
        operation_id="remove_member_tag",
        summary=_("Remove a tag (removing one it does not have changes nothing)"),
        responses={200: serializers.TagsOut},
    )
    def delete(self, request, external_id: str, tag: str):
        member = member_by_external_id(external_id)
        found = Tag.objects.filter(name=tag).first() if "\x00" not in tag else None
        if found is None:
            raise Http404
        with transaction.atomic():
            membership.remove_tag(member_id=member.pk, tag=found, reason=request.user.username)
            return Response(_tags_out(member.pk))


# -- points ----------------------------------------------------------------------------


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
        data = _valid(serializers.EarningIn, request.data)
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
        data = _valid(serializers.AdjustmentIn, request.data)
        entry = points.adjust(
            member_id=member.pk,
            points=data["points"],
            reason=data["reason"],
            actor=request.user,
            key=_ledger_key(request),
        )
        return Response(serializers.EntryOut(entry).data, status=status.HTTP_201_CREATED)


# -- the tier calculator ---------------------------------------------------------------


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
        data = _valid(serializers.CalculatorIn, request.data)
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


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
