"""A sandbox gateway for development and tests. It calls no network service.

Test card tokens:
    tok_ok                 always succeeds
    tok_decline            always declines
    tok_timeout            never answers (and charges nothing)
    tok_timeout_then_ok    charges, but the first answer is lost; asking again with the
                           same idempotency key returns the success
    tok_timeout_then_decline  declines, but the first answer is lost; asking again with the
                           same idempotency key returns the decline
    tok_error              raises an unexpected error (not a timeout) and charges nothing
    tok_fail_<N>_then_ok   declines the first N charges made with this token, then succeeds
"""

import re
import uuid

from django.db import IntegrityError, transaction

from subscriptions.models import SandboxCharge

from . import GatewayTimeout, Outcome

FAIL_THEN_OK = re.compile(r"^tok_fail_(\d+)_then_ok$")
LOST_FIRST_ANSWER = {"tok_timeout_then_ok", "tok_timeout_then_decline"}


class SandboxError(Exception):
    """What a gateway's unexpected failure looks like: neither an answer nor a timeout."""


class SandboxGateway:
    def charge(self, *, token: str, amount: int, idempotency_key: str) -> Outcome:
        known = SandboxCharge.objects.filter(idempotency_key=idempotency_key).first()
        if known is not None:
            if known.amount != amount:
                raise ValueError("idempotency key reused with a different amount")
            return Outcome(known.succeeded, known.reference, "" if known.succeeded else "declined")
        if token == "tok_timeout":
            raise GatewayTimeout(idempotency_key)
        if token == "tok_error":
            raise SandboxError(f"sandbox: unexpected error for {idempotency_key}")
        succeeded = token in {"tok_ok", "tok_timeout_then_ok"}
        if match := FAIL_THEN_OK.match(token):
            declined = SandboxCharge.objects.filter(token=token, succeeded=False).count()
            succeeded = declined >= int(match.group(1))
        try:
            with transaction.atomic():
                charge = SandboxCharge.objects.create(
                    idempotency_key=idempotency_key,
                    token=token,
                    amount=amount,
                    succeeded=succeeded,
                    reference=f"sbx_{uuid.uuid4().hex[:16]}",
                )
        except IntegrityError:  # the same key arrived twice at once: answer as the first
            return self.charge(token=token, amount=amount, idempotency_key=idempotency_key)
        if token in LOST_FIRST_ANSWER:
            raise GatewayTimeout(idempotency_key)  # charged; the answer comes on the next ask
        return Outcome(charge.succeeded, charge.reference, "" if succeeded else "declined")
