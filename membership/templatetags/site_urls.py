"""``{% route 'name' %}``: ``{% url 'name' %}`` for a route without arguments, reversed
once per process (and script prefix) instead of on every page.

The member pages' header and links name the same five routes on every request; reversing
them cost more than the page's own query. The routes take no language prefix
(config/urls.py has no i18n_patterns), so the address is the same for every visitor.
"""

from functools import lru_cache

from django import template
from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse

register = template.Library()


@lru_cache(maxsize=64)
def _reversed(viewname: str, prefix: str, urlconf) -> str:
    return reverse(viewname, urlconf=urlconf)


@register.simple_tag
def route(viewname: str) -> str:
    return _reversed(viewname, get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF)
