from celery import shared_task

from points import services


@shared_task
def expire_due_points() -> int:
    return services.expire_due()


@shared_task
def send_points_expiry_reminders() -> int:
    return services.send_expiry_reminders()


@shared_task
def award_birthday_points() -> int:
    """On the first of the month: the bonuses of the month just ended."""
    from points.birthday import award_birthday_bonuses, previous_month

    year, month = previous_month()
    return award_birthday_bonuses(year=year, month=month)
