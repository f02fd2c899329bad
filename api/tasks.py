from celery import shared_task

from .idempotency import purge_expired
from .webhooks.endpoints import tell_operators_endpoint_disabled as _tell_operators
from .webhooks.sending import send_due


@shared_task
def purge_idempotency_keys() -> int:
    return purge_expired()


@shared_task
def send_webhooks() -> int:
    """Every due webhook delivery: run after each change that owes one, and by beat each
    minute for the retries."""
    return send_due()


@shared_task
def tell_operators_endpoint_disabled(*, endpoint_id: int) -> int:
    return _tell_operators(endpoint_id=endpoint_id)
