"""Ledger entries refuse UPDATE and DELETE at the database on PostgreSQL.

No column of an entry changes after insert: a correction is a reversing entry. Lots are
not a ledger (their remaining points move as they are spent and expire), nor are
accounts (a cached balance). The function is membership's ledger_refuse_change().
"""

from django.db import migrations

CREATE = """
CREATE TRIGGER points_entry_append_only
    BEFORE UPDATE OR DELETE ON points_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
"""

DROP = "DROP TRIGGER IF EXISTS points_entry_append_only ON points_entry;"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("points", "0007_leaner_entry_indexes"),
        ("membership", "0007_ledgers_append_only"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
