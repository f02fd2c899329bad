from . import audit, groups, members, nudges, orders, tag_history  # noqa: F401  (registers the admins)
