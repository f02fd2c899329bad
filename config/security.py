"""The admin site's second factor and the client address login throttling counts by."""

from django.conf import settings
from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.app_list import AppListBuiltOnce


class StaffLoginForm(OTPAdminAuthenticationForm):
    """Password and token on one form: a staff user with one confirmed TOTP device need not
    choose it first (one with several, or a backup code, chooses from the list)."""

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is None:
            devices = list(
                TOTPDevice.objects.devices_for_user(user, confirmed=True).select_for_update()
            )
            if len(devices) == 1:
                device = devices[0]
        return device

    def _update_form(self, user):
        # django-otp writes the password back into the page for the second try; we don't.
        self.fields["otp_device"].widget.choices = self.device_choices(user)


class StaffAdminSite(AppListBuiltOnce, OTPAdminSite):
    """The admin. With STAFF_TOTP_REQUIRED on, staff log in with a password and a token from
    a confirmed TOTP device, and a login without a verified device does not reach any admin
    page; with it off, the plain password login. Read per request, so tests can switch it."""

    def __init__(self, name: str = "admin"):
        super().__init__(name)

    @property
    def login_form(self):
        return StaffLoginForm if settings.STAFF_TOTP_REQUIRED else None

    @property
    def login_template(self):
        return "admin/login_totp.html" if settings.STAFF_TOTP_REQUIRED else None

    def has_permission(self, request: HttpRequest) -> bool:
        if settings.STAFF_TOTP_REQUIRED:
            return super().has_permission(request)
        return AdminSite.has_permission(self, request)


def client_ip(request: HttpRequest) -> str | None:
    """The address a login attempt came from: the socket's peer, or behind
    TRUSTED_PROXY_COUNT proxies the address the outermost trusted proxy saw (the entries
    to its left in X-Forwarded-For are whatever the client wrote, so they are not read)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")


def lockout_response(request: HttpRequest, original_response, credentials) -> HttpResponse:
    """The page a locked-out login gets (both login pages): what happened and for how long,
    in the visitor's language, as 429 Too Many Requests."""
    minutes = max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))
    return render(
        request,
        "members/locked_out.html",
        {"failure_limit": settings.AXES_FAILURE_LIMIT, "cooloff_minutes": minutes},
        status=429,
    )
