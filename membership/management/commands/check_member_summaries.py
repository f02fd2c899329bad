from django.core.management.base import BaseCommand, CommandError

from membership.services.summary import rebuild_member_summaries, summary_disagreements

SHOWN = 50  # disagreements printed in full; the count covers them all


class Command(BaseCommand):
    help = (
        "Prove every member summary (what the tier page reads) against a fresh computation, "
        "chunked by member id; fail on any difference. --rebuild rewrites them all first."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="rewrite every summary set-based before checking (after migrating, or to repair)",
        )
        parser.add_argument(
            "--expired", action="store_true", help="with --rebuild: only rows past valid_until"
        )
        parser.add_argument("--chunk", type=int, default=10_000, help="members per statement")

    def handle(self, *args, **options):
        if options["rebuild"]:
            written = rebuild_member_summaries(
                chunk=options["chunk"], expired_only=options["expired"]
            )
            self.stdout.write(f"Rewrote {written} member summaries.")
        wrong = 0
        for d in summary_disagreements(chunk=options["chunk"]):
            wrong += 1
            if wrong <= SHOWN:
                self.stderr.write(
                    f"member {d.member_id}: {d.field} stored {d.stored!r}, fresh {d.fresh!r}"
                )
        if wrong:
            raise CommandError(f"{wrong} member summary fields disagree with a fresh computation")
        self.stdout.write("Every member summary equals a fresh computation.")
