"""The member's unique, phone and e-mail indexes without their LIKE twins.

A field's unique=True or db_index=True gave each of external id, phone and e-mail a
second ``varchar_pattern_ops`` index on PostgreSQL, and e-mail a plain one besides its
UPPER and trigram indexes; no query reads them, and each costs every write of a member.
The schema is changed by hand, by renaming what stays (no index is rebuilt, however
many members there are) and dropping the rest: Django's own AlterField would remake the
table on SQLite and fail on the trigram indexes only PostgreSQL has.
"""

from django.db import migrations, models

POSTGRES_FORWARDS = [
    "DROP INDEX IF EXISTS membership_member_email_360928b1",
    "DROP INDEX IF EXISTS membership_member_email_360928b1_like",
    "DROP INDEX IF EXISTS membership_member_phone_504b6413_like",
    "DROP INDEX IF EXISTS membership_member_external_id_941f389b_like",
    "ALTER INDEX membership_member_phone_504b6413 RENAME TO member_phone_idx",
    "ALTER TABLE membership_member RENAME CONSTRAINT membership_member_external_id_key "
    "TO member_external_id_unique",
]
POSTGRES_BACKWARDS = [
    "ALTER TABLE membership_member RENAME CONSTRAINT member_external_id_unique "
    "TO membership_member_external_id_key",
    "ALTER INDEX member_phone_idx RENAME TO membership_member_phone_504b6413",
    'CREATE INDEX membership_member_email_360928b1 ON membership_member ("email")',
    "CREATE INDEX membership_member_email_360928b1_like ON membership_member "
    '("email" varchar_pattern_ops)',
    "CREATE INDEX membership_member_phone_504b6413_like ON membership_member "
    '("phone" varchar_pattern_ops)',
    "CREATE INDEX membership_member_external_id_941f389b_like ON membership_member "
    '("external_id" varchar_pattern_ops)',
]
# SQLite keeps the column's own UNIQUE (it cannot be dropped without remaking the table)
# beside the named unique index the state now declares.
SQLITE_FORWARDS = [
    "DROP INDEX IF EXISTS membership_member_email_360928b1",
    "DROP INDEX IF EXISTS membership_member_phone_504b6413",
    'CREATE INDEX member_phone_idx ON membership_member ("phone")',
    'CREATE UNIQUE INDEX member_external_id_unique ON membership_member ("external_id")',
]
SQLITE_BACKWARDS = [
    "DROP INDEX IF EXISTS member_external_id_unique",
    "DROP INDEX IF EXISTS member_phone_idx",
    'CREATE INDEX membership_member_phone_504b6413 ON membership_member ("phone")',
    'CREATE INDEX membership_member_email_360928b1 ON membership_member ("email")',
]


def run(statements_by_vendor):
    def apply(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("membership", "0024_history_and_gifts_without_config_constraints"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(
                    run({"postgresql": POSTGRES_FORWARDS, "sqlite": SQLITE_FORWARDS}),
                    run({"postgresql": POSTGRES_BACKWARDS, "sqlite": SQLITE_BACKWARDS}),
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="member",
                    name="email",
                    field=models.EmailField(blank=True, max_length=254, verbose_name="e-mail"),
                ),
                migrations.AlterField(
                    model_name="member",
                    name="external_id",
                    field=models.CharField(
                        blank=True, max_length=64, null=True, verbose_name="external id"
                    ),
                ),
                migrations.AlterField(
                    model_name="member",
                    name="phone",
                    field=models.CharField(blank=True, max_length=20, verbose_name="phone"),
                ),
                migrations.AddIndex(
                    model_name="member",
                    index=models.Index(fields=["phone"], name="member_phone_idx"),
                ),
                migrations.AddConstraint(
                    model_name="member",
                    constraint=models.UniqueConstraint(
                        fields=("external_id",), name="member_external_id_unique"
                    ),
                ),
            ],
        ),
    ]
