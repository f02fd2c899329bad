"""Admin pages that are forms over one service call."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

from membership import services
from membership.forms import AdjustTierForm, CalculatorForm, RefundForm
from membership.models import Member, Order, ProgrammeVersion
from membership.selectors import calculate_tier


def _apply_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def adjust_tier_view(request, member_id: int):
    if not request.user.has_perm("membership.adjust_tier"):
        raise PermissionDenied
    member = get_object_or_404(Member.objects.select_related("group", "tier"), pk=member_id)
    form = AdjustTierForm(request.POST or None, initial={"tier": member.tier_id})
    if request.method == "POST" and form.is_valid():
        try:
            services.adjust_tier(member_id=member.pk, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(
                request, _("The tier of %(name)s was adjusted.") % {"name": member.name}
            )
            return redirect("admin:membership_member_change", member.pk)
    context = {
        **admin.site.each_context(request),
        "title": _("Adjust the tier of %(name)s") % {"name": member.name},
        "member": member,
        "form": form,
        "opts": Member._meta,
    }
    return TemplateResponse(request, "admin/membership/member/adjust_tier.html", context)


def refund_view(request, order_id: int):
    if not request.user.has_perm("membership.add_refund"):
        raise PermissionDenied
    order = get_object_or_404(Order.objects.select_related("member"), pk=order_id)
    form = RefundForm(
        request.POST or None, initial={"amount": order.amount - order.refunded_amount}
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.record_refund(order_id=order.pk, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("The refund was recorded."))
            return redirect("admin:membership_order_change", order.pk)
    context = {
        **admin.site.each_context(request),
        "title": _("Refund order %(ref)s") % {"ref": order},
        "order": order,
        "form": form,
        "opts": Order._meta,
    }
    return TemplateResponse(request, "admin/membership/order/refund.html", context)


def calculator_view(request, member_id: int):
    """The member's tier calculator, run by an operator on the member's behalf."""
    if not request.user.has_perm("membership.view_member"):
        raise PermissionDenied
    member = get_object_or_404(Member, pk=member_id)
    # What-if: a draft (or a scheduled version) instead of the live rules.
    upcoming = ProgrammeVersion.objects.filter(
        status__in=[ProgrammeVersion.Status.DRAFT, ProgrammeVersion.Status.SCHEDULED]
    )
    form = CalculatorForm(request.GET or None, versions=upcoming)
    result = None
    if form.is_valid():
        result = calculate_tier(
            member,
            amount=form.cleaned_data["amount"],
            on=form.cleaned_data["on"],
            version=form.cleaned_data.get("version"),
        )
    context = {
        **admin.site.each_context(request),
        "title": _("Tier calculator for %(name)s") % {"name": member.name},
        "member": member,
        "form": form,
        "result": result,
        "opts": Member._meta,
    }
    return TemplateResponse(request, "admin/membership/member/calculator.html", context)
