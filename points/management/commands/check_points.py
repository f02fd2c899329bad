from django.core.management.base import BaseCommand, CommandError

from points.services import ledger_discrepancies


class Command(BaseCommand):
    help = "Prove every cached balance against the ledger and the lots; fail on any difference."

    def handle(self, *args, **options):
        wrong = ledger_discrepancies()
        for pk, cached, entries, lots in wrong:
            self.stderr.write(f"account {pk}: cached {cached}, entries {entries}, lots {lots}")
        if wrong:
            raise CommandError(f"{len(wrong)} accounts disagree with their ledger")
        self.stdout.write("Every balance equals its ledger and its lots.")
