"""The membership jobs run as batch jobs (see ``jobs``): recompute, review, nudges and
the member summaries.

Each chunk calls a service of ``membership.services`` with the job's moment, so every
chunk, wherever and whenever it runs, evaluates as of the same time.
"""

from __future__ import annotations

import datetime as dt

from jobs.kinds import JobKind, Step

from . import services
from .models import Cause
from .services import bulk
from .services.rules import Mode
from .services.summary import owe_dropped_summaries, rebuild_summary_range


def _now(params: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(params["now"])


def _ranges(mode: Mode, cause: Cause):
    def run(*, params: dict, id_from: int, id_to: int) -> dict:
        result = bulk.recompute_range(
            id_from=id_from, id_to=id_to, mode=mode, cause=cause, now=_now(params)
        )
        return vars(result)

    return run


def _sharers(cause: Cause):
    def run(*, params: dict, id_from: int, id_to: int) -> dict:
        return vars(bulk.sync_sharers(now=_now(params), cause=cause))

    return run


def _owe_summaries(*, params: dict, id_from: int, id_to: int) -> dict:
    # The chunks dropped the summaries of the members they moved without owing them, so
    # the summaries job starts once, after the last chunk, not once per chunk.
    return {"summaries_owed": int(owe_dropped_summaries())}


def _lift_locks(*, params: dict, id_from: int, id_to: int) -> dict:
    return {"locks_lifted": bulk.lift_expired_locks(now=_now(params))}


def _compute_nudges(*, params: dict, id_from: int, id_to: int) -> dict:
    return {"new": services.compute_nudges(now=_now(params))}


def _send_nudges(*, params: dict, id_from: int, id_to: int) -> dict:
    return {"sent": services.send_nudges()}


RECOMPUTE = JobKind(
    steps=(
        Step(_ranges(Mode.UPGRADE, Cause.RECOMPUTE)),
        Step(_sharers(Cause.RECOMPUTE), chunked=False),
        Step(_owe_summaries, chunked=False),
    )
)
# The review as review_due_members runs it: expired locks lifted, an upgrade pass (ended
# grants stop counting), then the retention thresholds of the members due.
REVIEW = JobKind(
    steps=(
        Step(_lift_locks, chunked=False),
        Step(_ranges(Mode.UPGRADE, Cause.REVIEW)),
        Step(_sharers(Cause.REVIEW), chunked=False),
        Step(_ranges(Mode.REVIEW, Cause.REVIEW)),
        Step(_sharers(Cause.REVIEW), chunked=False),
        Step(_owe_summaries, chunked=False),
    )
)
# The nudges are one statement per group and kind (membership.services.nudges), so they
# are one chunk each: recorded, then sent (each nudge claimed before its e-mail).
NUDGES = JobKind(
    steps=(
        Step(_compute_nudges, chunked=False),
        Step(_send_nudges, chunked=False, atomic=False),
    )
)


def _summaries(*, params: dict, id_from: int, id_to: int) -> dict:
    return {
        "written": rebuild_summary_range(id_from=id_from, id_to=id_to, now=_now(params)),
    }


# The summaries missing (dropped by a recompute that moved many members) or past their
# valid_until (each midnight): written again range by range, by whichever worker.
SUMMARIES = JobKind(steps=(Step(_summaries),))
