"""Taiwan's business ID (統一編號) checksum, under the Ministry of Finance's current rule."""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

WEIGHTS = (1, 2, 1, 2, 1, 2, 4, 1)
# ASCII digits only: str.isdigit() and \d also take full-width (２２０９９１３１),
# Arabic-Indic (٢٢٠٩٩١٣١) and superscript (²) digits, which no tax office issues.
EIGHT_ASCII_DIGITS = re.compile(r"[0-9]{8}", re.ASCII)


def is_valid_business_id(value: str) -> bool:
    """Eight ASCII digits (0–9) whose weighted digit sum is divisible by 5.

    Each digit is multiplied by its weight and the two digits of each product are
    added. Since 2023 the sum must divide by 5 (the older rule, by 10, is a special
    case of it). When the seventh digit is 7, its product 28 gives 2 + 8 = 10, and
    that 10 may count as 1 or as 0.
    """
    if not isinstance(value, str) or not EIGHT_ASCII_DIGITS.fullmatch(value):
        return False
    total = 0
    for digit, weight in zip(value, WEIGHTS, strict=True):
        product = int(digit) * weight
        total += product // 10 + product % 10
    if value[6] == "7":
        without = total - 10  # the 10 from 28, counted as 0 …
        return without % 5 == 0 or (without + 1) % 5 == 0  # … or as 1
    return total % 5 == 0


def validate_business_id(value: str) -> None:
    if is_valid_business_id(value):
        return
    if (
        isinstance(value, str)
        and len(value) == 8
        and value.isdigit()
        and not EIGHT_ASCII_DIGITS.fullmatch(value)
    ):
        raise ValidationError(
            _("%(value)s: a business ID (統一編號) is written in half-width digits 0–9."),
            params={"value": value},
            code="business_id_not_ascii",
        )
    raise ValidationError(
        _("%(value)s is not a valid business ID (統一編號): 8 digits with a valid checksum."),
        params={"value": value},
        code="invalid_business_id",
    )
