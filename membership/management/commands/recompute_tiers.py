from django.core.management.base import BaseCommand

from jobs import services as jobs
from jobs.tasks import dispatch as dispatch_job


class Command(BaseCommand):
    help = (
        "Evaluate every member set-based as a batch job; only members whose group or tier "
        "changes are written. An unfinished job of the same kind is resumed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--review",
            action="store_true",
            help="Run the daily review instead: lift expired locks, apply retention thresholds.",
        )
        parser.add_argument("--chunk", type=int, default=None, help="Members per chunk.")
        parser.add_argument(
            "--dispatch",
            action="store_true",
            help="Send the chunks to the Celery workers instead of running them here.",
        )

    def handle(self, *args, review: bool, chunk: int | None, dispatch: bool, **options):
        kind = "review" if review else "recompute"
        if dispatch:
            job = jobs.start(kind=kind, chunk=chunk, dispatched=True)
            dispatch_job(job.pk)
            self.stdout.write(
                f"Job {job.pk} sent to the workers: {job.chunks_total} chunks "
                f"({job.chunks_done} already done)."
            )
            return
        job = jobs.run(kind=kind, chunk=chunk)
        result = job.result
        self.stdout.write(
            f"{result.get('changed', 0)} members changed, {result.get('history_rows', 0)} "
            f"history rows, {result.get('gifts', 0)} gifts issued."
        )
