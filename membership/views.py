"""The member's own pages. Every query is scoped to the logged-in member."""

import datetime as dt

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .forms import CalculatorForm
from .models import Member, Order
from .portal import panels_for
from .selectors import calculate_tier, member_dashboard


def _member(request) -> Member:
    member = Member.objects.select_related("tier_holder").filter(user=request.user).first()
    if member is None:
        raise Http404(_("This login has no membership."))
    return member


@login_required
def my_tier(request):
    member = _member(request)
    return render(
        request,
        "members/my_tier.html",
        {
            "member": member,
            "dash": member_dashboard(member),
            "panels": panels_for(member),
            "form": CalculatorForm(initial={"on": timezone.localdate() + dt.timedelta(days=30)}),
        },
    )


@login_required
def calculator(request):
    member = _member(request)
    form = CalculatorForm(request.GET or None)
    result = None
    if form.is_valid():
        result = calculate_tier(
            member, amount=form.cleaned_data["amount"], on=form.cleaned_data["on"]
        )
    return render(
        request, "members/calculator.html", {"member": member, "form": form, "result": result}
    )


@login_required
def order_detail(request, order_id: int):
    member = _member(request)
    order = get_object_or_404(Order.objects.prefetch_related("refunds"), pk=order_id, member=member)
    return render(request, "members/order.html", {"member": member, "order": order})
