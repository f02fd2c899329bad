"""A client holding an API key, for the API tests."""

from rest_framework.test import APIClient

from api.keys import create_api_key
from api.models import Scope
from tests.factories import UserFactory

ALL_SCOPES = list(Scope.values)


def key_client(*scopes: str, name: str = "shop") -> tuple[APIClient, object]:
    new = create_api_key(name=name, scopes=list(scopes or ALL_SCOPES), actor=UserFactory())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {new.plaintext}")
    return client, new
