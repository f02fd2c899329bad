"""Ledgers refuse UPDATE and DELETE at the database on PostgreSQL, as the audit log does.

One trigger function serves every ledger (points entries, tier history, gift issues,
subscription events, charge attempts): an UPDATE may change only the columns named in the
trigger's arguments, each named where its trigger is created with the reason it must
change; every other UPDATE and every DELETE is refused. A correction is a new row.
The points and subscriptions apps attach the same function to their ledgers.

Run the site as a role that does not own the tables (README, "Security"): an owner could
drop the triggers, a non-owner cannot. TRUNCATE (only to reset a test database) is left
alone, as for the audit log.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger AS $$
DECLARE
    mutable text[] := COALESCE(TG_ARGV, '{}');
BEGIN
    IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - mutable) = (to_jsonb(OLD) - mutable) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

TRIGGERS = """
-- notified_at: the e-mail outbox marks a row once its member has been told of the change.
CREATE TRIGGER membership_tierhistory_append_only
    BEFORE UPDATE OR DELETE ON membership_tierhistory
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change('notified_at');

CREATE TRIGGER membership_giftissue_append_only
    BEFORE UPDATE OR DELETE ON membership_giftissue
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS membership_tierhistory_append_only ON membership_tierhistory;
DROP TRIGGER IF EXISTS membership_giftissue_append_only ON membership_giftissue;
DROP FUNCTION IF EXISTS ledger_refuse_change();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION, params=None)
        schema_editor.execute(TRIGGERS, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("membership", "0006_nudges")]
    operations = [migrations.RunPython(forwards, backwards)]
