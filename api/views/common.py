"""What every endpoint shares: the base view, Idempotency-Key handling, lookups."""

from __future__ import annotations

import functools
import json

from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from membership.models import Member, Order

from .. import idempotency

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


def valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def valid_with(serializer, data) -> dict:
    """``valid`` through a serializer built once (a new one deep-copies its fields). Invalid
    input is validated again the usual way, so its errors read exactly as ``valid``'s."""
    try:
        return serializer.run_validation(data)
    except exceptions.ValidationError:
        return valid(type(serializer), data)
