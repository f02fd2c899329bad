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
from .models import Account


class AdjustPointsForm(forms.Form):
    points = forms.IntegerField(
        label=gettext_lazy("points"), help_text=gettext_lazy("Positive adds, negative takes.")
    )
    reason = forms.CharField(label=gettext_lazy("reason"), widget=forms.Textarea(attrs={"rows": 3}))
    # Sending the same form twice (a double click, a retry) adjusts once.
    token = forms.UUIDField(widget=forms.HiddenInput)


def adjust_points_view(request, member_id: int):
    if not request.user.has_perm("points.adjust_points"):
        raise PermissionDenied
    member = get_object_or_404(Member, pk=member_id)
    form = AdjustPointsForm(request.POST or None, initial={"token": uuid.uuid4()})
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
    account = Account.objects.filter(member=member).first()
    context = {
        **admin.site.each_context(request),
        "title": _("Adjust the points of %(name)s") % {"name": member.name},
        "member": member,
        "account": account,
        "form": form,
        "opts": Member._meta,
    }
    return TemplateResponse(request, "admin/points/adjust.html", context)
