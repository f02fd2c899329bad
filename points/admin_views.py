"""The manual points adjustment: a reason, the permission, and one adjustment per form."""

import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from membership.models import Member

from . import services
from .models import Account, Entry


class AdjustPointsForm(forms.Form):
    # The ledger's own bounds (a 64-bit points column): a larger number is a form error.
    points = Entry._meta.get_field("points").formfield(
        label=gettext_lazy("points"), help_text=gettext_lazy("Positive adds, negative takes.")
    )
    reason = forms.CharField(label=gettext_lazy("reason"), widget=forms.Textarea(attrs={"rows": 3}))
    # Sending the same form twice (a double click, a retry) adjusts once.
    token = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, balance: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.balance = balance

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        most = self.fields["points"].max_value - self.balance
        if points > most:
            raise ValidationError(
                _("The balance can grow by at most %(most)s points; the ledger holds no more."),
                params={"most": most},
                code="max_value",
            )
        return points

    def clean(self):
        if "token" in self.errors:
            # The token is a hidden field: its own error would show nowhere on the page.
            self.add_error(
                None,
                ValidationError(
                    _("This form was out of date or changed on the way; check it and save again."),
                    code="bad_token",
                ),
            )
        return super().clean()

    def renew_token(self) -> None:
        """Send the form back with a fresh token, so that saving it again posts once."""
        self.data = self.data.copy()
        self.data["token"] = str(uuid.uuid4())


def adjust_points_view(request, member_id: int):
    if not request.user.has_perm("points.adjust_points"):
        raise PermissionDenied
    member = get_object_or_404(Member, pk=member_id)
    account = Account.objects.filter(member=member).first()
    form = AdjustPointsForm(
        request.POST or None,
        initial={"token": uuid.uuid4()},
        balance=account.balance if account else 0,
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.adjust(
                member_id=member.pk,
                points=form.cleaned_data["points"],
                reason=form.cleaned_data["reason"],
                actor=request.user,
                key=f"adjust:{form.cleaned_data['token']}",
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request, _("The points of %(name)s were adjusted.") % {"name": member.name}
            )
            return redirect("admin:membership_member_change", member.pk)
    if form.is_bound and "token" in form.errors:
        form.renew_token()
    context = {
        **admin.site.each_context(request),
        "title": _("Adjust the points of %(name)s") % {"name": member.name},
        "member": member,
        "account": account,
        "form": form,
        "opts": Member._meta,
    }
    return TemplateResponse(request, "admin/points/adjust.html", context)
