"""The membership rules. Admin, views, tasks and commands call these; none repeat them."""

from . import autoadjust, preview, versions  # noqa: E402  (modules, used as services.versions.…)
from .adjustments import adjust_tier
from .audit import Audited, record_audit, record_audits, snapshot
from .bulk import BulkResult, recompute_members, review_due_members
from .evaluation import Evaluation, EvaluationResult, evaluate, evaluate_member
from .grants import grant_tier
from .members import UpsertResult, upsert_member
from .notifications import send_tier_notifications
from .nudges import compute_nudges, send_nudges
from .orders import cancel_order, record_order, record_refund
from .review_warnings import compute_review_warnings
from .rules import Mode, load_programme
from .tags import add_tag, change_member_tags, change_tag_for_members, remove_tag

__all__ = [
    "Audited",
    "BulkResult",
    "UpsertResult",
    "Evaluation",
    "EvaluationResult",
    "Mode",
    "add_tag",
    "adjust_tier",
    "cancel_order",
    "change_member_tags",
    "change_tag_for_members",
    "compute_nudges",
    "compute_review_warnings",
    "evaluate",
    "evaluate_member",
    "grant_tier",
    "load_programme",
    "recompute_members",
    "record_audit",
    "record_audits",
    "record_order",
    "record_refund",
    "remove_tag",
    "review_due_members",
    "send_nudges",
    "send_tier_notifications",
    "snapshot",
    "upsert_member",
    "autoadjust",
    "preview",
    "versions",
]
