from decimal import Decimal

from django import template
from django.utils.translation import get_language
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def nt(value) -> str:
    """Whole NT$ with thousands separators: 15000 → 15,000."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)


@register.filter
def discount(percent_off) -> str:
    """A tier's discount as the reader's language writes it: 95 折 in zh-Hant, 5% off in English.

    Taiwan names the price paid: 5 % off is 95 折, 10 % off is 9 折, 12.5 % off is 87.5 折.
    No discount reads "—".
    """
    if not percent_off:
        return "—"
    off = Decimal(str(percent_off)).normalize()
    paid = (Decimal(100) - off).normalize()
    if paid <= 0:
        return _("free")
    if paid % 10 == 0:
        paid = (paid / 10).normalize()
    if (get_language() or "").lower().startswith("zh"):
        # Not a translation of "% off" but another number: the share of the price paid.
        return f"{_plain(paid)} 折"
    return _("%(percent)s%% off") % {"percent": _plain(off)}


def _plain(number: Decimal) -> str:
    return f"{number:f}"
