"""Subscription events and charge attempts refuse UPDATE and DELETE on PostgreSQL.

Events never change. A charge attempt is written before the gateway is asked and waits,
pending, for the answer: while its result is 'pending' the answer may be written once
(result, gateway_reference, message, answered_at; the message also says why no answer
came yet). Once answered, nothing of it changes. The function is membership's
ledger_refuse_change().
"""

from django.db import migrations

CREATE = """
CREATE TRIGGER subscriptions_subscriptionevent_append_only
    BEFORE UPDATE OR DELETE ON subscriptions_subscriptionevent
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- result, gateway_reference, message, answered_at: the gateway's answer, written once.
CREATE TRIGGER subscriptions_chargeattempt_pending_answer
    BEFORE UPDATE OR DELETE ON subscriptions_chargeattempt
    FOR EACH ROW WHEN (OLD.result = 'pending')
    EXECUTE FUNCTION ledger_refuse_change('result', 'gateway_reference', 'message', 'answered_at');

CREATE TRIGGER subscriptions_chargeattempt_append_only
    BEFORE UPDATE OR DELETE ON subscriptions_chargeattempt
    FOR EACH ROW WHEN (OLD.result <> 'pending')
    EXECUTE FUNCTION ledger_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS subscriptions_subscriptionevent_append_only
    ON subscriptions_subscriptionevent;
DROP TRIGGER IF EXISTS subscriptions_chargeattempt_pending_answer ON subscriptions_chargeattempt;
DROP TRIGGER IF EXISTS subscriptions_chargeattempt_append_only ON subscriptions_chargeattempt;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0003_subscription_pending_state"),
        ("membership", "0007_ledgers_append_only"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
