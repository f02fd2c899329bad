from . import audit, groups, members, nudges, orders  # noqa: F401  (registers the admins)
