"""The login backend: Django's ModelBackend, with the session's user read by hand.

Every page a logged-in visitor opens reads their user first. Building the ORM's SELECT
for it took longer than PostgreSQL took to answer it (as with the session,
config/sessions.py); the statement here is the one the ORM would send.

Settings list this backend before ``ModelBackend``. A login records the backend that let
it in, so logins from now on name this one; ``ModelBackend`` stays listed so that
sessions from before keep working until they end (Django logs out a session whose backend
is no longer listed). Because both check the same passwords, a wrong password stops here
(``PermissionDenied``) instead of being hashed a second time by ``ModelBackend``.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db import connections, router

from membership.rawrows import instance_from_row


class AccountBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None and password is not None:
            raise PermissionDenied  # Django's way for a backend to end the search
        return user

    def get_user(self, user_id):
        model = get_user_model()
        columns = [f.column for f in model._meta.concrete_fields]
        alias = router.db_for_read(model)
        quote = connections[alias].ops.quote_name
        sql = (
            f"SELECT {', '.join(map(quote, columns))} FROM {quote(model._meta.db_table)} "
            f"WHERE {quote(model._meta.pk.column)} = %s"
        )
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, [user_id])  # already the key's type (auth.get_user)
            row = cursor.fetchone()
        if row is None:
            return None
        names = [f.attname for f in model._meta.concrete_fields]
        user = instance_from_row(alias, model, dict(zip(names, row, strict=True)))
        return user if self.user_can_authenticate(user) else None
