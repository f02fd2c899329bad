from imports.command import ImportCommand


class Command(ImportCommand):
    help = (
        "Import past orders (and their refunds) from CSV or .xlsx, for members already here. "
        "Every row is checked first; nothing is written while any row is bad."
    )
    kind = "orders"
