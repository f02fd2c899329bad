"""Panels other apps add to the member's tier page, without membership importing them.

An app registers ``panel(member) -> (template_name, context) | None`` in its
AppConfig.ready(); the tier page renders each one that returns something. An app may
also register ``columns(now) -> {name: expression}``: the page's one read of the
member adds them (a few indexed rows each, read fresh), and the panel finds them as
attributes of the member instead of querying again.
"""

from collections.abc import Callable

Panel = Callable[[object], tuple[str, dict] | None]
Columns = Callable[[object], dict]
_panels: list[Panel] = []
_columns: list[Columns] = []


def register_panel(panel: Panel, *, columns: Columns | None = None) -> None:
    if panel not in _panels:
        _panels.append(panel)
    if columns is not None and columns not in _columns:
        _columns.append(columns)


def panel_columns(now) -> dict:
    """Every registered panel's columns for the member's one read at ``now``."""
    merged: dict = {}
    for columns in _columns:
        merged.update(columns(now))
    return merged


def panels_for(member) -> list[tuple[str, dict]]:
    return [p for p in (panel(member) for panel in _panels) if p]
