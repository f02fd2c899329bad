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

from functools import lru_cache

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db import connections, router

from membership.sqlrows import columns, instance


class AccountBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None and password is not None:
            raise PermissionDenied  # Django's way for a backend to end the search
        return user

    def get_user(self, user_id):
        model = get_user_model()
        alias = router.db_for_read(model)
        with connections[alias].cursor() as cursor:
            cursor.execute(_select(model), [user_id])  # already the key's type (auth.get_user)
            row = cursor.fetchone()
        if row is None:
            return None
        user = instance(model, row, using=alias)
        return user if self.user_can_authenticate(user) else None


@lru_cache(maxsize=2)
def _select(model) -> str:
    meta = model._meta
    return f"SELECT {columns(model)} FROM {meta.db_table} WHERE {meta.pk.column} = %s"
