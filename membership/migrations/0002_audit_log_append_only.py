"""The audit log refuses UPDATE and DELETE at the database on PostgreSQL.

Even a staff member with a SQL console, or a bug, cannot rewrite who did what.
TRUNCATE (used only to reset a test database) is left alone.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION membership_auditentry_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER membership_auditentry_append_only
    BEFORE UPDATE OR DELETE ON membership_auditentry
    FOR EACH ROW EXECUTE FUNCTION membership_auditentry_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS membership_auditentry_append_only ON membership_auditentry;
DROP FUNCTION IF EXISTS membership_auditentry_refuse_change();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("membership", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
