from celery import shared_task

from subscriptions import services


@shared_task
def run_subscription_jobs() -> dict:
    return services.run_jobs()


@shared_task
def settle_pending_charges() -> dict:
    return services.settle_pending_charges()
