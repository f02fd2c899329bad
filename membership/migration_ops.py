"""A migration operation for indexes on big, busy tables: built CONCURRENTLY on
PostgreSQL, so it never blocks writes, and on SQLite as usual or — for an index only
PostgreSQL has (a trigram GIN index) — not at all.

On a live table of ten million orders a plain CREATE INDEX would hold back every new
order and posting for minutes. On SQLite (development, half of CI) a PostgreSQL-only
index changes the migration state only, so the models stay in step with their
migrations and ``makemigrations`` finds nothing. Migrations using it set
``atomic = False`` (CONCURRENTLY cannot run inside a transaction).
"""

from django.contrib.postgres.operations import AddIndexConcurrently, TrigramExtension
from django.db.migrations import AddIndex


class AddIndexWithoutLocking(AddIndexConcurrently):
    def __init__(self, model_name, index, postgres_only=False):
        super().__init__(model_name, index)
        self.postgres_only = postgres_only

    def deconstruct(self):
        name, args, kwargs = super().deconstruct()
        if self.postgres_only:
            kwargs["postgres_only"] = True
        return name, args, kwargs

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        elif not self.postgres_only:
            AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        elif not self.postgres_only:
            AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class TrigramExtensionOnPostgres(TrigramExtension):
    """pg_trgm on PostgreSQL (trusted since 13: the database owner may create it); nothing
    elsewhere, either way (Django's own skips SQLite going forwards only)."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
