import datetime as dt

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from membership.models import Tier


class AdjustTierForm(forms.Form):
    tier = forms.ModelChoiceField(
        Tier.objects.select_related("group").order_by("group__priority", "rank"),
        label=_("tier"),
    )
    locked_until = forms.DateField(
        label=_("lock until"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_(
            "Optional. Until this date, evaluation never takes the member below this tier."
        ),
    )
    reason = forms.CharField(
        label=_("reason"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Required. Kept in the audit log and the tier history."),
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("A manual adjustment needs a reason."))
        return reason


class RefundForm(forms.Form):
    amount = forms.IntegerField(label=_("amount (NT$)"), min_value=1)
    external_id = forms.CharField(
        label=_("refund reference"),
        max_length=64,
        help_text=_("The shop's refund number; sending the same one twice records it once."),
    )


class CalculatorForm(forms.Form):
    amount = forms.IntegerField(label=_("If I spend (NT$)"), min_value=0, max_value=100_000_000)
    on = forms.DateField(
        label=_("by this date"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args, versions=None, **kwargs):
        """``versions``: the programme versions it may also run on (what-if), e.g. drafts."""
        super().__init__(*args, **kwargs)
        # An empty form offers a date a month ahead, as the tier page's own calculator does.
        self.fields["on"].initial = timezone.localdate() + dt.timedelta(days=30)
        if versions is not None:
            self.fields["version"] = forms.ModelChoiceField(
                queryset=versions,
                required=False,
                label=_("under the rules of"),
                empty_label=_("the live version"),
            )

    def clean_on(self):
        on = self.cleaned_data["on"]
        if on < timezone.localdate():
            raise forms.ValidationError(_("Choose today or a later date."))
        return on
