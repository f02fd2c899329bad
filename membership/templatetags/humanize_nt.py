from django import template

register = template.Library()


@register.filter
def nt(value) -> str:
    """Whole NT$ with thousands separators: 15000 → 15,000."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)
