"""Taiwan's business ID (統一編號) checksum, under the Ministry of Finance's current rule."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

WEIGHTS = (1, 2, 1, 2, 1, 2, 4, 1)


def is_valid_business_id(value: str) -> bool:
    """Eight digits whose weighted digit sum is divisible by 5.

    Each digit is multiplied by its weight and the two digits of each product are
    added. Since 2023 the sum must divide by 5 (the older rule, by 10, is a special
    case of it). When the seventh digit is 7, its product 28 gives 2 + 8 = 10, and
    that 10 may count as 1 or as 0.
    """
    if len(value) != 8 or not value.isdigit():
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
    if not is_valid_business_id(value):
        raise ValidationError(
            _("%(value)s is not a valid business ID (統一編號): 8 digits with a valid checksum."),
            params={"value": value},
            code="invalid_business_id",
        )
