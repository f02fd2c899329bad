from . import audit, groups, members, nudges, orders, tag_history, versions  # noqa: F401  (registers the admins)
from .axes_labels import relabel as relabel_axes
from .celery_beat import relabel as relabel_celery_beat
from .common import translate_default_field_labels

translate_default_field_labels()
relabel_celery_beat()
relabel_axes()
