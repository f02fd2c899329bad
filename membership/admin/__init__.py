from . import audit, groups, members, orders  # noqa: F401  (registers the admins)
