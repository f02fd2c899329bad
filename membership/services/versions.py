"""Programme versions: the tier rules drafted, compared, scheduled, made live and ended.

A version holds each group's rule (entry amount and condition, metric, window, review
period) and each tier's upgrade and retention thresholds. Exactly one is live, and its
values are written into the ``VipGroup`` and ``Tier`` columns when it goes live: this
module is the only writer of those columns after the first version, so the order path,
the recompute SQL and the explanation read the live version without a join.

Benefits, texts, gifts and badges are not versioned: they change at once on the tier.
Entry tags stay on the group (which tags admit a member is not a threshold).

Going live and ending are switches, each a unique ``VersionSwitch`` row written in the
same transaction as the change, so a beat job run twice (or two workers) switches once.
The evaluation after a switch is an outbox follow-up: the set-based recompute in
upgrade mode, so a lowered threshold upgrades at once and a raised one moves nobody
down before their review, where the new retention thresholds apply.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.models import (
    EntryRequires,
    Metric,
    ProgrammeVersion,
    Tier,
    VersionGroupRule,
    VersionSwitch,
    VersionTierThreshold,
    VipGroup,
    Window,
)
from membership.outbox import enqueue

from .audit import record_audit
from .programme import Rung, ladder_problems
from .rules import local_midnight

Status = ProgrammeVersion.Status
GROUP_FIELDS = ["entry_amount", "entry_requires", "metric", "window", "review_period_months"]
TIER_FIELDS = ["upgrade_threshold", "retention_threshold"]
# A threshold change takes effect this many days later, at local midnight (the peer's rule).
DEFAULT_DELAY_DAYS = 2


def live_version() -> ProgrammeVersion | None:
    return ProgrammeVersion.objects.filter(status=Status.LIVE).first()


def default_effective_from(now: dt.datetime | None = None) -> dt.datetime:
    """Local (Asia/Taipei) midnight two days from today."""
    today = timezone.localdate(now or timezone.now())
    return local_midnight(today + dt.timedelta(days=DEFAULT_DELAY_DAYS))


def _next_number() -> int:
    return (ProgrammeVersion.objects.aggregate(n=Max("number"))["n"] or 0) + 1


def _copy_columns_into(version: ProgrammeVersion, *, only_missing: bool = False) -> None:
    """The groups' and tiers' current (live) values as rows of ``version``."""
    have_groups = set(version.group_rules.values_list("group_id", flat=True))
    have_tiers = set(version.thresholds.values_list("tier_id", flat=True))
    VersionGroupRule.objects.bulk_create(
        VersionGroupRule(version=version, group_id=g["id"], **{f: g[f] for f in GROUP_FIELDS})
        for g in VipGroup.objects.values("id", *GROUP_FIELDS)
        if not (only_missing and g["id"] in have_groups)
    )
    VersionTierThreshold.objects.bulk_create(
        VersionTierThreshold(version=version, tier_id=t["id"], **{f: t[f] for f in TIER_FIELDS})
        for t in Tier.objects.values("id", *TIER_FIELDS)
        if not (only_missing and t["id"] in have_tiers)
    )


def ensure_live_version(*, actor=None) -> ProgrammeVersion:
    """The live version; made from today's configuration when there is none yet."""
    with transaction.atomic():
        version = live_version()
        if version is None:
            now = timezone.now()
            version = ProgrammeVersion.objects.create(
                number=_next_number(),
                name=_("Programme as configured"),
                status=Status.LIVE,
                created_by=actor,
                created_at=now,
                published_by=actor,
                published_at=now,
                effective_from=now,
            )
            _copy_columns_into(version)
            VersionSwitch.objects.create(
                version=version, kind=VersionSwitch.Kind.START, done_at=now
            )
        return version


def create_draft(
    *, actor, source: ProgrammeVersion | None = None, name: str = ""
) -> ProgrammeVersion:
    """A new draft copied from ``source`` (the live version by default) or any earlier one.

    A group or tier added since ``source`` was made takes today's live values.
    """
    with transaction.atomic():
        live = ensure_live_version(actor=actor)
        source = source or live
        draft = ProgrammeVersion.objects.create(
            number=_next_number(),
            name=name or source.name,
            status=Status.DRAFT,
            copied_from=source,
            created_by=actor,
        )
        VersionGroupRule.objects.bulk_create(
            VersionGroupRule(
                version=draft, group_id=r["group_id"], **{f: r[f] for f in GROUP_FIELDS}
            )
            for r in source.group_rules.values("group_id", *GROUP_FIELDS)
        )
        VersionTierThreshold.objects.bulk_create(
            VersionTierThreshold(
                version=draft, tier_id=t["tier_id"], **{f: t[f] for f in TIER_FIELDS}
            )
            for t in source.thresholds.values("tier_id", *TIER_FIELDS)
        )
        _copy_columns_into(draft, only_missing=True)
        record_audit(
            actor=actor,
            action="programmeversion.draft",
            obj=draft,
            after={"copied_from": source.number},
        )
    return draft


def rules_of(version: ProgrammeVersion) -> dict:
    """A version's values keyed by group and tier name, as the diff compares them."""
    out: dict = {}
    for r in version.group_rules.select_related("group").order_by("group__priority", "group_id"):
        out[r.group.name] = {"group": {f: getattr(r, f) for f in GROUP_FIELDS}, "tiers": {}}
    for t in version.thresholds.select_related("tier__group").order_by("tier__rank"):
        entry = out.setdefault(t.tier.group.name, {"group": {}, "tiers": {}})
        entry["tiers"][t.tier.name] = {f: getattr(t, f) for f in TIER_FIELDS}
    return out


def _label(field: str) -> str:
    return {
        "entry_amount": _("qualifying amount"),
        "entry_requires": _("entry condition"),
        "metric": _("qualifying metric"),
        "window": _("window"),
        "review_period_months": _("review period (months)"),
        "upgrade_threshold": _("upgrade threshold"),
        "retention_threshold": _("retention threshold"),
    }[field]


def _shown(field: str, value) -> str:
    if value is None:
        return _("none")
    choices = {"metric": Metric, "window": Window, "entry_requires": EntryRequires}.get(field)
    if choices:
        return str(choices(value).label)
    return f"{value:,}"


def diff(version: ProgrammeVersion, against: ProgrammeVersion | None = None) -> list[str]:
    """The version's differences from ``against`` (the live version), one sentence each."""
    against = against or live_version()
    if against is None or against.pk == version.pk:
        return []
    old, new = rules_of(against), rules_of(version)
    lines = []
    for group, entry in new.items():
        before = old.get(group, {"group": {}, "tiers": {}})
        for f in GROUP_FIELDS:
            a, b = before["group"].get(f), entry["group"].get(f)
            if f in before["group"] and a != b:
                lines.append(
                    _("%(group)s: %(field)s %(old)s → %(new)s")
                    % {"group": group, "field": _label(f), "old": _shown(f, a), "new": _shown(f, b)}
                )
        for tier, values in entry["tiers"].items():
            was = before["tiers"].get(tier)
            for f in TIER_FIELDS:
                if was is not None and was[f] != values[f]:
                    lines.append(
                        _("%(group)s · %(tier)s: %(field)s %(old)s → %(new)s")
                        % {
                            "group": group,
                            "tier": tier,
                            "field": _label(f),
                            "old": f"{was[f]:,}",
                            "new": f"{values[f]:,}",
                        }
                    )
    return lines


def ladder_errors(version: ProgrammeVersion) -> list[str]:
    """The tier ladders of a version that break the programme's rule, in words."""
    rungs: dict[int, list[Rung]] = {}
    for t in version.thresholds.select_related("tier"):
        rungs.setdefault(t.tier.group_id, []).append(
            Rung(t.tier_id, t.tier.rank, t.tier.name, t.upgrade_threshold, t.retention_threshold)
        )
    return [p.message for group in rungs.values() for p in ladder_problems(group)]


@dataclass(frozen=True)
class Scheduled:
    version: ProgrammeVersion
    went_live: bool


def schedule(
    version: ProgrammeVersion,
    *,
    actor,
    effective_from: dt.datetime | None = None,
    ends_on: dt.date | None = None,
    now: dt.datetime | None = None,
) -> Scheduled:
    """Approve a draft to go live at ``effective_from`` (local midnight two days later by
    default); a moment not after ``now`` makes it live at once (the admin asks first)."""
    now = now or timezone.now()
    effective_from = effective_from or default_effective_from(now)
    with transaction.atomic():
        version = ProgrammeVersion.objects.select_for_update().get(pk=version.pk)
        if version.status != Status.DRAFT:
            raise ValidationError(_("Only a draft can be published."), code="not_draft")
        problems = ladder_errors(version)
        if problems:
            raise ValidationError(problems, code="ladder")
        if ends_on is not None and ends_on <= timezone.localdate(effective_from):
            raise ValidationError(
                _("A version ends after the day it takes effect."), code="ends_before"
            )
        version.status = Status.SCHEDULED
        version.effective_from = max(effective_from, now)
        version.ends_on = ends_on
        version.published_by = actor
        version.save(update_fields=["status", "effective_from", "ends_on", "published_by"])
        record_audit(
            actor=actor,
            action="programmeversion.approve",
            obj=version,
            before={"status": Status.DRAFT},
            after={
                "status": Status.SCHEDULED,
                "effective_from": version.effective_from.isoformat(),
                "ends_on": ends_on.isoformat() if ends_on else None,
            },
        )
    went_live = False
    if version.effective_from <= now:
        went_live = version.pk in switch_due_versions(now=now)
    version.refresh_from_db()
    return Scheduled(version=version, went_live=went_live)


def _claim(version: ProgrammeVersion, kind: str, now: dt.datetime) -> bool:
    """Write the switch's unique row; False when another run wrote it first."""
    try:
        with transaction.atomic():
            VersionSwitch.objects.create(version=version, kind=kind, done_at=now)
    except IntegrityError:
        return False
    return True


def _materialise(version: ProgrammeVersion) -> None:
    """Write the version's values into the live group and tier columns."""
    for r in version.group_rules.all():
        VipGroup.objects.filter(pk=r.group_id).update(**{f: getattr(r, f) for f in GROUP_FIELDS})
    rows = list(version.thresholds.all())
    # Retention first as 0 so no intermediate row breaks retention ≤ upgrade.
    Tier.objects.filter(pk__in=[t.tier_id for t in rows]).update(retention_threshold=0)
    for t in rows:
        Tier.objects.filter(pk=t.tier_id).update(**{f: getattr(t, f) for f in TIER_FIELDS})
    from membership.display import forget

    transaction.on_commit(forget)


def _make_live(version: ProgrammeVersion, *, replaces, now: dt.datetime, action: str) -> None:
    version.status = Status.LIVE
    version.published_at = now
    if replaces is not None:
        version.replaces = replaces
    version.save(update_fields=["status", "published_at", "replaces"])
    _materialise(version)
    record_audit(
        actor=version.published_by if action == "programmeversion.publish" else None,
        action=action,
        obj=version,
        after={"status": Status.LIVE, "live_since": now.isoformat()},
    )
    enqueue(
        "membership.tasks.evaluate_after_version_switch",
        version_id=version.pk,
        at=now.isoformat(),
    )


def switch_due_versions(*, now: dt.datetime | None = None) -> list[int]:
    """The beat job: end seasonal versions whose end day has come (the version they
    replaced is live again), then make live the scheduled versions whose moment has come.
    Returns the ids of the versions made live. Safe to run twice."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    made_live: list[int] = []
    current = live_version()
    if current and current.ends_on and current.ends_on <= today:
        with transaction.atomic():
            if _claim(current, VersionSwitch.Kind.END, now):
                current.status = Status.ENDED
                current.save(update_fields=["status"])
                record_audit(
                    actor=None,
                    action="programmeversion.end",
                    obj=current,
                    before={"status": Status.LIVE},
                    after={"status": Status.ENDED},
                )
                restored = current.replaces
                if restored is not None:
                    _make_live(restored, replaces=None, now=now, action="programmeversion.restore")
                    made_live.append(restored.pk)
    due = ProgrammeVersion.objects.filter(
        status=Status.SCHEDULED, effective_from__lte=now
    ).order_by("effective_from", "number")
    for version in due:
        with transaction.atomic():
            if not _claim(version, VersionSwitch.Kind.START, now):
                continue
            previous = (
                ProgrammeVersion.objects.select_for_update().filter(status=Status.LIVE).first()
            )
            if previous is not None:
                previous.status = Status.REPLACED
                previous.save(update_fields=["status"])
            _make_live(version, replaces=previous, now=now, action="programmeversion.publish")
            made_live.append(version.pk)
    return made_live


def evaluate_after_switch(*, version_id: int, at: str | None = None):
    """The set-based evaluation after a version went live, naming it and its publisher."""
    from membership.models import Cause

    from .bulk import recompute_members

    version = ProgrammeVersion.objects.select_related("published_by").get(pk=version_id)
    if version.status != Status.LIVE:
        return None  # another switch came first; its own follow-up evaluates
    return recompute_members(
        cause=Cause.VERSION,
        actor=version.published_by,
        version=version.number,
        now=dt.datetime.fromisoformat(at) if at else None,
    )


def reject(version: ProgrammeVersion, *, actor, reason: str = "") -> None:
    with transaction.atomic():
        version = ProgrammeVersion.objects.select_for_update().get(pk=version.pk)
        if version.status != Status.DRAFT:
            raise ValidationError(_("Only a draft can be rejected."), code="not_draft")
        version.status = Status.REJECTED
        version.save(update_fields=["status"])
        record_audit(
            actor=actor,
            action="programmeversion.reject",
            obj=version,
            before={"status": Status.DRAFT},
            after={"status": Status.REJECTED},
            reason=reason,
        )
