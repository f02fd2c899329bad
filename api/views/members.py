"""Members by external id: upsert, read, list, tags."""

from __future__ import annotations

from django.db import transaction
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from membership import services as membership
from membership.models import Member, Tag
from membership.selectors import member_dashboard

from .. import serializers
from ..filters import MemberFilter
from ..models import Scope
from .common import (
    IDEMPOTENCY_PARAMETER,
    ApiView,
    idempotent,
    member_by_external_id,
    valid,
)

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
    data = valid(serializers.MemberIn, request.data)
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
        external_id = valid(serializers.NewMemberIn, request.data)["external_id"]
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
        name = valid(serializers.TagIn, request.data)["tag"]
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
