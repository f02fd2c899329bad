from django.core.management.base import BaseCommand

from segments.kpis import take_snapshots
from segments.services import compute_segments


class Command(BaseCommand):
    help = (
        "Recompute every member's RFM scores, lifecycle stage, behaviours and system tags, "
        "then the day's KPI snapshots (the nightly job, run now)."
    )

    def handle(self, *args, **options):
        run = compute_segments()
        rows = take_snapshots()
        self.stdout.write(
            f"{run.members} members with orders, {run.buyers} bought in the RFM period, "
            f"{run.tag_changes} system-tag changes, {rows} snapshot rows."
        )
