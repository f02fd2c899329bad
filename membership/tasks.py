"""Thin Celery tasks: each calls one service. Idempotency lives in the services."""

from celery import shared_task

from jobs.tasks import start_job
from membership import outbox, services


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def send_tier_notifications() -> int:
    return services.send_tier_notifications()


# The batch jobs run as job records whose chunks the workers share (jobs app); these
# names stay for the follow-ups and schedules that already name them.


@shared_task
def recompute_all_members() -> int:
    """After a programme change: a fresh recompute (chunks done before it are stale)."""
    return start_job("recompute", fresh=True)


@shared_task
def review_due_members() -> int:
    return start_job("review")


@shared_task
def compute_and_send_nudges() -> int:
    return start_job("nudges")


@shared_task
def compute_review_warnings() -> int:
    return services.compute_review_warnings()


@shared_task
def send_nudges() -> int:
    return services.send_nudges()


@shared_task
def run_outbox_message(message_id: int) -> bool:
    return outbox.run(message_id=message_id)


@shared_task
def sweep_outbox() -> int:
    return outbox.sweep()


@shared_task
def switch_programme_versions() -> list[int]:
    return services.versions.switch_due_versions()


@shared_task
def evaluate_after_version_switch(version_id: int, at: str | None = None) -> dict:
    result = services.versions.evaluate_after_switch(version_id=version_id, at=at)
    return vars(result) if result else {}


@shared_task
def run_auto_adjust() -> int:
    return len(services.autoadjust.run_auto_adjust())


@shared_task
def refresh_member_summaries() -> int:
    """Write the member summaries missing or past their ``valid_until`` (each midnight's
    windows; after a recompute that moved many members), as a job the workers share.
    A fresh job: ranges an unfinished one already passed may have lost rows since."""
    return start_job("summaries", fresh=True)
