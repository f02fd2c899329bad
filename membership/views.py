"""The member's own pages. Every query is scoped to the logged-in member.

They read from the replica when there is one (config/replica.py): a member who just
changed something reads from the primary for a few seconds.
"""

import datetime as dt
from functools import lru_cache

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from config.replica import reads_from_replica

from .forms import CalculatorForm
from .models import Member, Order, ProgrammeVersion
from .portal import panels_for
from .selectors import calculate_tier, member_page, page_member
from .services.privacy import export_member_data


def _member(request) -> Member:
    member = Member.objects.select_related("tier_holder").filter(user=request.user).first()
    if member is None:
        raise Http404(_("This login has no membership."))
    return member


@reads_from_replica
@login_required
def my_tier(request):
    # One read: the member, their summary row and the panels' columns together.
    now = timezone.now()
    member = page_member(user_id=request.user.pk, now=now)
    if member is None:
        raise Http404(_("This login has no membership."))
    return render(
        request,
        "members/my_tier.html",  # templates/jinja2/: the page every member opens, in Jinja2
        {
            "member": member,
            "dash": member_page(member, now=now),
            "panels": panels_for(member),
            "calculator": calculator_fields(
                get_language(), timezone.localdate() + dt.timedelta(days=30)
            ),
        },
        using="jinja2",
    )


@lru_cache(maxsize=16)
def calculator_fields(language: str, on: dt.date) -> dict[str, str]:
    """The tier page's calculator, its labels and fields as HTML, in ``language`` with
    ``on`` filled in: the same on every page that day, so built once per process (the
    form and its two widget templates took longer than the page's one query)."""
    form = CalculatorForm(initial={"on": on})
    return {
        "amount_label": str(form["amount"].label),
        "amount": str(form["amount"]),
        "on_label": str(form["on"].label),
        "on": str(form["on"]),
    }


@reads_from_replica
@login_required
def calculator(request):
    member = _member(request)
    # A member may try a version already announced (scheduled); drafts stay in the office.
    announced = ProgrammeVersion.objects.filter(status=ProgrammeVersion.Status.SCHEDULED)
    form = CalculatorForm(request.GET or None, versions=announced if announced.exists() else None)
    result = None
    if form.is_valid():
        result = calculate_tier(
            member,
            amount=form.cleaned_data["amount"],
            on=form.cleaned_data["on"],
            version=form.cleaned_data.get("version"),
        )
    return render(
        request, "members/calculator.html", {"member": member, "form": form, "result": result}
    )


@reads_from_replica
@login_required
def order_detail(request, order_id: int):
    member = _member(request)
    order = get_object_or_404(Order.objects.prefetch_related("refunds"), pk=order_id, member=member)
    return render(request, "members/order.html", {"member": member, "order": order})


@reads_from_replica
@login_required
def my_data(request):
    """The member's own data as a file (PDPA art. 10): their rows only, audited."""
    member = _member(request)
    export = export_member_data(member_id=member.pk, actor=request.user)
    response = HttpResponse(export.content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response["Cache-Control"] = "no-store"
    return response
