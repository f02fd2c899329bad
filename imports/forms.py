from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from . import services
from .models import ImportJob

ENCODING_CHOICES = [
    ("", _("Detect (UTF-8, UTF-8 with BOM or CP950/Big5)")),
    ("utf-8", "UTF-8"),
    ("utf-8-sig", _("UTF-8 with BOM")),
    ("cp950", _("CP950 / Big5 (Excel on Traditional-Chinese Windows)")),
    ("cp1252", _("Windows-1252 / Latin-1 (Western European)")),
]


class UploadForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_("CSV or Excel (.xlsx); English or Chinese column headers."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.xlsx"}),
    )
    encoding = forms.ChoiceField(label=_("Encoding"), choices=ENCODING_CHOICES, required=False)
    allow_new_tags = forms.BooleanField(
        label=_("Create tags the file names that do not exist yet"), required=False
    )

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        if kind != ImportJob.Kind.MEMBERS:
            del self.fields["allow_new_tags"]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            services.check_upload_size(upload.size)
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc
        return upload


class EncodingForm(forms.Form):
    """The operator's choice of encoding for a file whose encoding was only a guess."""

    encoding = forms.ChoiceField(label=_("Encoding"), choices=ENCODING_CHOICES[1:])
