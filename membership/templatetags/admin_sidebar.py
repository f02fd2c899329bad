"""The admin's navigation sidebar, rendered once for each thing it can show.

Django renders the sidebar's list of apps and models (``admin/app_list.html``) on every
admin page: some fifty rows of links, names and translated labels, a tenth of a list
page's time. What it shows depends only on the apps and models the user may see (their
names, links and whether they may add or only view), the language, and which app and
model the page belongs to; each rendering is kept under exactly those, so the sidebar
is the one Django would render, read from memory after the first time.
"""

from django import template
from django.template.defaultfilters import urlencode
from django.template.loader import get_template
from django.utils.translation import get_language

register = template.Library()

# Renderings by what they show; cleared when full (a few per role, language and model).
_rendered: dict[tuple, str] = {}
KEEP = 512


def _shown(available_apps, path: str) -> tuple:
    """Everything admin/app_list.html reads, as the template would test it."""
    return tuple(
        (
            app["app_label"],
            str(app["name"]),
            app["app_url"],
            app["app_url"] in path,
            tuple(
                (
                    m["object_name"],
                    str(m["name"]),
                    m["admin_url"],
                    m["add_url"],
                    m.get("view_only"),
                    bool(m["admin_url"]) and m["admin_url"] in path,
                )
                for m in app["models"]
            ),
        )
        for app in available_apps
    )


@register.simple_tag(takes_context=True)
def nav_sidebar_app_list(context) -> str:
    """admin/app_list.html for the sidebar (``show_changelinks`` off), as Django's
    nav_sidebar.html includes it."""
    request = context["request"]
    available_apps = context.get("available_apps") or []
    key = (get_language(), _shown(available_apps, urlencode(request.path)))
    html = _rendered.get(key)
    if html is None:
        html = get_template("admin/app_list.html").render(
            {"app_list": available_apps, "show_changelinks": False, "request": request}
        )
        if len(_rendered) >= KEEP:
            _rendered.clear()
        _rendered[key] = html
    return html
