"""What a kind of job is: its steps, and what each chunk of a step runs.

The apps that own the work describe their jobs (``membership.jobs``,
``segments.jobs``); this module only names them, so the job machinery imports none
of them until a job runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils.module_loading import import_string

from .models import Job


@dataclass(frozen=True)
class Step:
    """One step of a job.

    ``run(params=…, id_from=…, id_to=…)`` does one chunk (members ``id_from`` to
    ``id_to``, both included) in the caller's transaction and returns counts to add up;
    it must give the same answer run twice. A step that is not ``chunked`` runs once
    (its range is 0–0). ``prepare(params=…)``, when given, runs once as the step
    begins and returns values added to the job's parameters for its chunks. A step
    that is not ``atomic`` runs outside the chunk's transaction: for work that sends
    e-mail, which must not wait in a transaction that may still roll back, and that
    claims what it sends on its own so that a second run sends nothing twice.
    """

    run: Callable[..., dict]
    chunked: bool = True
    atomic: bool = True
    prepare: Callable[..., dict] | None = None


@dataclass(frozen=True)
class JobKind:
    steps: tuple[Step, ...]
    # begin(now=…) → the job's first parameters, read once when it starts.
    begin: Callable[..., dict] | None = None


DEFINITIONS = {
    Job.Kind.RECOMPUTE: "membership.jobs.RECOMPUTE",
    Job.Kind.REVIEW: "membership.jobs.REVIEW",
    Job.Kind.NUDGES: "membership.jobs.NUDGES",
    Job.Kind.SEGMENTS: "segments.jobs.SEGMENTS",
    Job.Kind.SUMMARIES: "membership.jobs.SUMMARIES",
}


def kind_of(kind: str) -> JobKind:
    return import_string(DEFINITIONS[Job.Kind(kind)])
