"""Shared fixtures, and the rule for tests that need a real service.

A test marked ``postgres``, ``redis`` or ``browser`` is skipped, with the reason,
where that service is absent, and fails instead when REQUIRE_SERVICES=1 (as in
CI), so a green CI run never hides a skipped service test.
"""

import os
import shutil
import socket
from urllib.parse import urlparse

import pytest
import time_machine
from django.db import connection

from membership.management.commands.seed_demo import create_demo_programme
from tests.factories import build_design_programme

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")


def _reachable(url: str) -> bool:
    parts = urlparse(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def _missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _services(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing("needs PostgreSQL: run with DATABASE_URL=postgres://postgres@127.0.0.1:5432/test")
    if request.node.get_closest_marker("redis") and not _reachable(REDIS_URL):
        _missing(f"needs Redis at {REDIS_URL}")
    if request.node.get_closest_marker("browser") and not CHROMIUM:
        _missing("needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with nothing cached (the member pages cache the programme)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _media(settings, tmp_path_factory):
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")


@pytest.fixture
def english():
    """Messages in English (the site's default language is zh-Hant)."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def programme(db):
    """DESIGN.md's four groups with the numbers of its worked examples."""
    return build_design_programme()


@pytest.fixture
def demo(db):
    """The demo site's programme: seed_demo's groups, tiers and tags."""
    create_demo_programme()


@pytest.fixture
def frozen_clock(request):
    """The clock stopped at the test module's ``NOW`` (use it with ``usefixtures``)."""
    with time_machine.travel(request.module.NOW, tick=False) as traveller:
        yield traveller
