"""``Authorization: Bearer <key>``: the key is the integration; its scopes are its rights."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.throttling import SimpleRateThrottle

from .keys import find_api_key
from .models import ApiKey


class Integration:
    """request.user for an API key: authenticated, not a login. Audits name it ``api:<key>``."""

    is_authenticated = True
    is_active = True
    is_staff = False
    pk = None
    id = None

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.username = f"api:{api_key.name}"

    def __str__(self) -> str:
        return self.username


class BearerKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        try:
            scheme, _sep, token = header.decode("ascii").partition(" ")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("Unknown or revoked API key.")) from None
        if scheme.lower() != "bearer":
            return None
        api_key = find_api_key(token.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed(_("Unknown or revoked API key."))
        return Integration(api_key), api_key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class HasScope(BasePermission):
    """The key carries the view's scope for this method (``required_scopes[method]``)."""

    message = _("This API key does not have the scope this request needs.")

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return False
        method = "GET" if request.method == "HEAD" else request.method
        needed = view.required_scopes.get(method)
        if needed is None:
            # No such operation here: the view answers 405 (OPTIONS describes the endpoint).
            return method == "OPTIONS" or not hasattr(view, method.lower())
        self.message = _("This API key needs the %(scope)s scope.") % {"scope": needed}
        return needed in request.auth.scopes


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per key per period (settings.API_RATE_LIMIT); 429 with Retry-After beyond it.

    Counted in the default cache: per process unless CACHE_URL names a shared one (Redis).
    """

    scope = "api_key"

    def get_rate(self):
        from django.conf import settings

        return settings.API_RATE_LIMIT

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
