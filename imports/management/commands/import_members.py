from imports.command import ImportCommand


class Command(ImportCommand):
    help = (
        "Import members from CSV or .xlsx (UTF-8, UTF-8 with BOM or CP950; English or zh-Hant "
        "headers). Every row is checked first; nothing is written while any row is bad."
    )
    kind = "members"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--allow-new-tags", action="store_true")
