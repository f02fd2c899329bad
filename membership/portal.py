"""Panels other apps add to the member's tier page, without membership importing them.

An app registers ``panel(member) -> (template_name, context) | None`` in its
AppConfig.ready(); the tier page renders each one that returns something.
"""

from collections.abc import Callable

Panel = Callable[[object], tuple[str, dict] | None]
_panels: list[Panel] = []


def register_panel(panel: Panel) -> None:
    if panel not in _panels:
        _panels.append(panel)


def panels_for(member) -> list[tuple[str, dict]]:
    return [p for p in (panel(member) for panel in _panels) if p]
