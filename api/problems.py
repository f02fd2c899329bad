"""Errors as RFC 9457 problem details (application/problem+json), in the caller's language.

Every error the API gives has ``type``, ``title``, ``status`` and ``detail``; invalid input
also has ``errors``, one per invalid field: its name, a JSON pointer and the message.
A service's refusal (a Django ValidationError) is a 400 like invalid input, with its own type.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .idempotency import KeyInFlight, KeyReused

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "urn:vip-membership:problem:"


class RuleRefused(exceptions.APIException):
    """A service said no (e.g. more refunded than paid). Nothing was written."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "refused"


def _titles() -> dict[int, tuple[str, str]]:
    return {
        400: ("invalid-request", _("The request is not valid")),
        401: ("not-authenticated", _("A valid API key is needed")),
        403: ("forbidden", _("This API key may not do this")),
        404: ("not-found", _("Not found")),
        405: ("method-not-allowed", _("Method not allowed")),
        406: ("not-acceptable", _("Not acceptable")),
        409: ("idempotency-key-in-flight", _("Request still in progress")),
        415: ("unsupported-media-type", _("Unsupported media type")),
        422: ("idempotency-key-reused", _("Idempotency key reused")),
        429: ("rate-limited", _("Too many requests")),
    }


def field_errors(detail, path: tuple[str, ...] = ()) -> list[dict]:
    """Flatten DRF's nested error detail into one entry per invalid field."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            out += field_errors(value, (*path, str(key)))
        return out
    if isinstance(detail, list) and detail and all(isinstance(d, str) for d in detail):
        field = ".".join(path) or "non_field_errors"
        return [
            {"field": field, "pointer": "#/" + "/".join(path), "detail": str(d)} for d in detail
        ]
    if isinstance(detail, list):
        out = []
        for i, value in enumerate(detail):
            out += field_errors(value, (*path, str(i)))
        return out
    field = ".".join(path) or "non_field_errors"
    return [{"field": field, "pointer": "#/" + "/".join(path), "detail": str(detail)}]


def _from_django(exc: DjangoValidationError) -> exceptions.APIException:
    if hasattr(exc, "error_dict"):
        detail = {
            ("non_field_errors" if k == "__all__" else k): v for k, v in exc.message_dict.items()
        }
    else:
        detail = {"non_field_errors": exc.messages}
    refused = RuleRefused(detail=detail)
    return refused


def problem(status_code: int, detail: str, *, kind: str = "", errors=None, headers=None):
    slug, title = _titles().get(status_code, ("error", _("Error")))
    body = {
        "type": TYPE_BASE + (kind or slug),
        "title": title,
        "status": status_code,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return Response(body, status=status_code, headers=headers, content_type=CONTENT_TYPE)


def problem_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = _from_django(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None  # a server fault: Django's 500, after the transaction rolled back
    headers = {
        k: v for k, v in response.items() if k in ("Retry-After", "WWW-Authenticate", "Allow")
    }
    if isinstance(exc, exceptions.ValidationError | RuleRefused):
        errors = field_errors(exc.detail)
        refused = isinstance(exc, RuleRefused)
        messages = [e["detail"] for e in errors]
        detail = (
            " ".join(messages)
            if refused
            else _("%(count)s field(s) are not valid.") % {"count": len(errors)}
        )
        return problem(
            response.status_code,
            detail,
            kind="refused" if refused else "",
            errors=[e for e in errors if e["field"] != "non_field_errors"] or errors,
            headers=headers,
        )
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    if isinstance(detail, list | dict):
        detail = " ".join(str(e["detail"]) for e in field_errors(detail))
    kind = ""
    if isinstance(exc, KeyInFlight | KeyReused):
        kind = exc.default_code.replace("_", "-")
    return problem(response.status_code, str(detail), kind=kind, headers=headers)
