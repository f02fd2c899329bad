from celery import shared_task

from points import services


@shared_task
def expire_due_points() -> int:
    return services.expire_due()


@shared_task
def send_points_expiry_reminders() -> int:
    return services.send_expiry_reminders()
