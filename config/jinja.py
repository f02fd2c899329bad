"""The Jinja2 environment of the member's tier page (templates/jinja2/).

Jinja2 compiles a template to Python: the tier page, the one every member opens, took
about 1.4 ms to render in Django's template language and takes 0.4-0.5 ms here, the
same HTML (README, member_page). The other pages stay in Django's language; the header
is written in both (tests/test_tier_page_engine.py holds them equal).

What the page's Django templates had, named the same: ``_``/``gettext``, ``pgettext``
and ``{% trans %}`` through Django's own translation (same catalogue, same msgids),
``static``, ``route``, the ``nt``, ``discount`` and ``date`` filters (and ``day``, its
``Y-m-d``), and ``fragment`` for what ``{% cache %}`` kept. Values are
escaped as in Django (autoescape on); a missing attribute renders as nothing, as in
Django (ChainableUndefined).
"""

import datetime as dt
from functools import lru_cache

import jinja2
from django.conf import settings
from django.core.cache import cache
from django.template.defaultfilters import date as django_date
from django.template.loader import render_to_string
from django.templatetags.static import static as django_static
from django.utils import translation
from django.utils.timezone import template_localtime
from markupsafe import Markup

from membership.templatetags.humanize_nt import discount, nt
from membership.templatetags.site_urls import route


def date(value, arg=None) -> str:
    """Django's ``date`` filter, on the local time as Django's templates hand it over."""
    return django_date(template_localtime(value), arg)


def day(value) -> str:
    """``date("Y-m-d")`` for a date or a time (its local day), without the date filter's
    format machinery: the page writes four of them."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = template_localtime(value).date()
    return value.isoformat()


@lru_cache(maxsize=64)
def static(path: str) -> str:
    """``{% static %}``, once per process: the manifest of hashed names is read at start."""
    return django_static(path)


@lru_cache(maxsize=8)
def languages() -> tuple[tuple[str, str], ...]:
    """(code, name in that language) of every language the site offers."""
    return tuple(
        (code, translation.get_language_info(code)["name_local"]) for code, _ in settings.LANGUAGES
    )


def django_template(template_name: str, context: dict, request) -> Markup:
    """A template in Django's language inside this page: the panels other apps register
    (``membership.portal``) and the offers, rendered only for members who have them."""
    return Markup(render_to_string(template_name, context, request, using="django"))


def fragment(render, *key) -> Markup:
    """``render()``'s HTML, kept in the cache under ``key`` for ten minutes, as Django's
    ``{% cache %}`` does: for parts that ``key`` fully determines (a programme version,
    which changes with every change of the programme, a group, a rank, a language)."""
    name = "jinja.fragment." + ".".join(str(part) for part in key)
    html = cache.get(name)
    if html is None:
        html = str(render())
        cache.set(name, html, 600)
    return Markup(html)


def environment(**options) -> jinja2.Environment:
    options.setdefault("extensions", []).append("jinja2.ext.i18n")
    options["undefined"] = jinja2.ChainableUndefined
    # Django's templates keep a file's last newline; so does this page.
    options.setdefault("keep_trailing_newline", True)
    env = jinja2.Environment(**options)
    # Old-style gettext, as Django's tags translate: ``_("…")`` is escaped like any value;
    # a ``{% trans %}`` text is the markup and only its variables are escaped. ``_`` calls
    # Django's gettext directly (the extension's alias goes through the context first).
    env.install_gettext_callables(  # type: ignore[attr-defined]
        translation.gettext,
        translation.ngettext,
        newstyle=False,
        pgettext=translation.pgettext,
        npgettext=translation.npgettext,
    )
    env.globals["_"] = translation.gettext
    env.globals.update(
        static=static,
        route=route,
        get_language=translation.get_language,
        languages=languages,
        django_template=django_template,
        fragment=fragment,
    )
    env.filters.update(nt=nt, discount=discount, date=date, day=day)
    return env
