"""The OpenAPI schema, checked against the app by Schemathesis (property-based, bounded).

Every operation is called with generated input; no answer may be a server error, or a
status, content type, header or body that the schema does not describe.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from membership import services
from membership.models import Cause
from tests.api_helpers import key_client
from tests.factories import MemberFactory

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """The app is called as WSGI, not through Django's test client: like that client, keep
    the test's database connection (and its transaction) open between requests."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def bearer(programme):
    member = MemberFactory(external_id="C-1")
    services.evaluate_member(member_id=member.pk, cause=Cause.RECOMPUTE)
    services.record_order(
        member_id=member.pk, external_id="SO-1", amount=5000, placed_at=member.joined_at
    )
    _client, new = key_client()
    return f"Bearer {new.plaintext}"


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_schema(case, bearer):
    # The path names the test's member and order, so the calls reach the services;
    # headers, queries and bodies stay generated.
    for name, known in (("external_id", "C-1"), ("order_id", "SO-1")):
        if name in (case.path_parameters or {}):
            case.path_parameters[name] = known
    case.call_and_validate(headers={"Authorization": bearer}, checks=CHECKS)
