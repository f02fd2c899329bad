"""Thin Celery tasks: each calls one service. Idempotency lives in the services."""

from celery import shared_task

from membership import outbox, services


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def send_tier_notifications() -> int:
    return services.send_tier_notifications()


@shared_task
def recompute_all_members() -> dict:
    return vars(services.recompute_members())


@shared_task
def review_due_members() -> dict:
    return vars(services.review_due_members())


@shared_task
def compute_and_send_nudges() -> dict:
    return {"new": services.compute_nudges(), "sent": services.send_nudges()}


@shared_task
def run_outbox_message(message_id: int) -> bool:
    return outbox.run(message_id=message_id)


@shared_task
def sweep_outbox() -> int:
    return outbox.sweep()


@shared_task
def refresh_member_summaries() -> int:
    """Rewrite the member summaries past their ``valid_until`` (each midnight's windows)."""
    from membership.services.summary import rebuild_member_summaries

    return rebuild_member_summaries(expired_only=True)
