"""The nightly segment job and the KPI snapshots as one batch job (see ``jobs``).

The steps of ``services.compute_segments``, each chunk calling its range function:
the quintile cuts are found once as the job begins and kept in the job, so every
chunk (and a resumed run) scores against the same cuts; then the segment rows by
member range, the system tags by member range, and the snapshots.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from jobs.kinds import JobKind, Step

from . import kpis, services
from .models import SegmentSettings


def _now(params: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(params["now"])


def _begin(*, now: dt.datetime) -> dict:
    # Read before the job moves it: the tag step looks only at rows changed since.
    since = services.current_settings().tags_synced_at
    return {"since": since.isoformat() if since else None}


def _cuts(*, params: dict) -> dict:
    buyers, cuts = services.quintile_cuts(rules=services.current_settings(), now=_now(params))
    # PostgreSQL answers datetimes; SQLite's raw cursor its stored text, used as it is.
    datetimes = any(isinstance(v, dt.datetime) for v in cuts["r"])
    return {
        "buyers": buyers,
        "r_datetimes": datetimes,
        "cuts": {
            "r": [v.isoformat() if datetimes else v for v in cuts["r"]],
            "f": [_number(v) for v in cuts["f"]],
            "m": [_number(v) for v in cuts["m"]],
        },
    }


def _number(value) -> int | str:
    """A cut as JSON keeps: whole numbers as integers (SQLite compares a text parameter
    as greater than every number), anything else as the text of its Decimal."""
    return int(value) if value == int(value) else str(value)


def _stored_cuts(params: dict) -> dict:
    cuts = params["cuts"]
    return {
        "r": [dt.datetime.fromisoformat(v) for v in cuts["r"]]
        if params.get("r_datetimes")
        else cuts["r"],
        "f": [Decimal(v) if isinstance(v, str) else v for v in cuts["f"]],
        "m": [Decimal(v) if isinstance(v, str) else v for v in cuts["m"]],
    }


def _segment_range(*, params: dict, id_from: int, id_to: int) -> dict:
    written = services.segment_range(
        id_from=id_from,
        id_to=id_to + 1,  # segment_range's end is excluded
        rules=services.current_settings(),
        cuts=_stored_cuts(params),
        now=_now(params),
    )
    return {"members": written}


def _prepare_tags(*, params: dict) -> dict:
    services._analyze("segments_membersegment")
    services.segment_tags()
    services._analyze("membership_membertag")
    return {}


def _tag_range(*, params: dict, id_from: int, id_to: int) -> dict:
    since = params.get("since")
    changes = services.tag_range(
        id_from=id_from,
        id_to=id_to + 1,
        tags=services.segment_tags(),
        now=_now(params),
        changed_since=dt.datetime.fromisoformat(since) if since else None,
    )
    return {"tag_changes": changes}


def _tags_synced(*, params: dict, id_from: int, id_to: int) -> dict:
    SegmentSettings.objects.filter(pk=services.current_settings().pk).update(
        tags_synced_at=_now(params)
    )
    return {}


def _snapshots(*, params: dict, id_from: int, id_to: int) -> dict:
    return {"snapshot_rows": kpis.take_snapshots(now=_now(params))}


SEGMENTS = JobKind(
    begin=_begin,
    steps=(
        Step(_segment_range, prepare=_cuts),
        Step(_tag_range, prepare=_prepare_tags),
        Step(_tags_synced, chunked=False),
        Step(_snapshots, chunked=False),
    ),
)
