"""The shop API's own admin pages: revoking a key from its page."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

from .keys import revoke_api_key
from .models import ApiKey


def may_revoke(user) -> bool:
    """Revoking is the change permission (a key is never edited otherwise)."""
    return user.has_perm("api.change_apikey")


def revoke_key_view(request, key_id: int):
    """The key page's 「撤銷這把金鑰」: a confirmation, then the revocation."""
    if not may_revoke(request.user):
        raise PermissionDenied
    api_key = get_object_or_404(ApiKey, pk=key_id)
    if request.method == "POST":
        if api_key.revoked_at is None:
            revoke_api_key(api_key_id=api_key.pk, actor=request.user)
            messages.success(request, _("%(key)s revoked.") % {"key": api_key})
        else:  # a second click, or another operator first
            messages.warning(request, _("%(key)s was already revoked.") % {"key": api_key})
        return redirect("admin:api_apikey_change", api_key.pk)
    if api_key.revoked_at is not None:
        return redirect("admin:api_apikey_change", api_key.pk)
    context = {
        **admin.site.each_context(request),
        "opts": ApiKey._meta,
        "original": api_key,
        "title": _("Revoke %(key)s?") % {"key": api_key},
    }
    return TemplateResponse(request, "admin/api/apikey/revoke.html", context)
