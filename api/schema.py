"""Schema: the bearer key, and the problem responses every operation can give."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.BearerKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Authorization: Bearer vip_<prefix>_<secret>, made in the admin.",
        }


PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "pointer", "detail"],
                "properties": {
                    "field": {"type": "string"},
                    "pointer": {"type": "string"},
                    "detail": {"type": "string"},
                },
            },
        },
    },
}
DESCRIPTIONS = {
    "400": "Invalid request, or refused by a rule (nothing was written)",
    "401": "No valid API key",
    "403": "The API key lacks the scope",
    "404": "No such member, order or tag",
    "406": "Not acceptable",
    "409": "A request with this Idempotency-Key is still in progress",
    "415": "Unsupported media type",
    "422": "The Idempotency-Key was used for a different request",
    "429": "Rate limit reached; see Retry-After",
}
POST_ONLY = {"409", "422"}


def add_problem_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: the RFC 9457 answers, on every API operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM
    ref = {"$ref": "#/components/schemas/Problem"}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/") or path.startswith("/api/v1/schema"):
            continue
        for operation in operations.values():
            params = operation.get("parameters", [])
            keyed = any(p.get("name") == "Idempotency-Key" for p in params)
            for code, text in DESCRIPTIONS.items():
                if code in POST_ONLY and not keyed:
                    continue
                operation["responses"].setdefault(
                    code,
                    {"description": text, "content": {"application/problem+json": {"schema": ref}}},
                )
    return result
