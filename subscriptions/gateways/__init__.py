"""The payment-gateway port. A real gateway (ECPay, NewebPay, Stripe…) is one module
with a class that has ``charge``, named in settings.PAYMENT_GATEWAY."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    reference: str
    message: str = ""


class GatewayTimeout(Exception):
    """No answer in time: the charge may or may not have happened.

    Ask again with the same idempotency key; the gateway answers without charging twice.
    """


class PaymentGateway(Protocol):
    def charge(self, *, token: str, amount: int, idempotency_key: str) -> Outcome: ...


def get_gateway() -> PaymentGateway:
    return import_string(settings.PAYMENT_GATEWAY)()
