from django.core.management.base import BaseCommand

from membership import services
from membership.services.rules import Mode


class Command(BaseCommand):
    help = "Evaluate every member set-based; only members whose group or tier changes are written."

    def add_arguments(self, parser):
        parser.add_argument(
            "--review",
            action="store_true",
            help="Run the daily review instead: lift expired locks, apply retention thresholds.",
        )
        parser.add_argument("--chunk", type=int, default=None, help="Members per transaction.")

    def handle(self, *args, review: bool, chunk: int | None, **options):
        if review:
            result = services.review_due_members()
        else:
            result = services.recompute_members(mode=Mode.UPGRADE, chunk=chunk)
        self.stdout.write(
            f"{result.changed} members changed, {result.history_rows} history rows, "
            f"{result.gifts} gifts issued."
        )
