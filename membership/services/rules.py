"""The tier rules as pure functions over a snapshot of the programme.

This is the one statement of the rules. The single-member evaluation and the tier
calculator call it directly; the set-based recompute (``bulk.py``) compiles the
same rules into SQL and a test holds the two to the same answers.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field, replace
from enum import StrEnum

from django.db.models import F, Q
from django.db.models.expressions import CombinedExpression
from django.utils import timezone

from membership.models import (
    EntryRequires,
    Metric,
    ProgrammeStamp,
    Tier,
    VersionGroupRule,
    VersionTierThreshold,
    VipGroup,
    Window,
)

INACTIVITY_DAYS = 365


class Mode(StrEnum):
    """How far an evaluation may move the earned tier."""

    UPGRADE = "upgrade"  # paid order, tag change, recompute: up at once, never down
    RERANK = "rerank"  # the order that earned the tier was refunded: down to what is still met
    REVIEW = "review"  # periodic review: down to the highest retention threshold met


@dataclass(frozen=True)
class TierRule:
    id: int
    rank: int
    name: str
    upgrade: int
    retention: int
    gift: str


@dataclass(frozen=True)
class GroupRule:
    id: int
    name: str
    priority: int
    is_default: bool
    entry_tags: tuple[tuple[int, str], ...]  # (id, name), by name
    entry_amount: int | None
    entry_requires: str
    metric: str
    window: str
    review_months: int
    tiers: tuple[TierRule, ...]  # by rank, ascending

    def tier_at(self, rank: int) -> TierRule | None:
        return next((t for t in self.tiers if t.rank == rank), None)

    def rank_of(self, tier_id: int | None) -> int:
        return next((t.rank for t in self.tiers if t.id == tier_id), 0)

    @property
    def entry_tag_ids(self) -> frozenset[int]:
        return frozenset(tid for tid, _ in self.entry_tags)

    @property
    def has_condition(self) -> bool:
        return bool(self.entry_tags) or self.entry_amount is not None


@dataclass(frozen=True)
class Programme:
    """Groups in the order they are checked: by priority, the default group last."""

    groups: tuple[GroupRule, ...]

    def group(self, group_id: int | None) -> GroupRule | None:
        return next((g for g in self.groups if g.id == group_id), None)

    def group_of_tier(self, tier_id: int | None) -> GroupRule | None:
        return next((g for g in self.groups if any(t.id == tier_id for t in g.tiers)), None)

    @property
    def default(self) -> GroupRule | None:
        return next((g for g in self.groups if g.is_default), None)


def load_programme(version_id: int | None = None, *, stamp: int | None = None) -> Programme:
    """The whole configuration: kept per process under the programme stamp, else three queries.

    Without ``version_id``: the live version, whose values the group and tier columns
    hold. With it: that programme version's rules and thresholds (a draft, for the impact
    preview and the what-if calculator); a group or tier the version does not name keeps
    the live value.

    ``stamp`` is ``ProgrammeStamp``'s value as the caller read it in a query it makes
    anyway (``STAMP_SQL``); without it, it is read here (one query). The database
    changes the stamp on every write to the programme's tables (migration 0023), so a
    programme kept under the stamp just read is the one the tables hold now. No stamp
    (SQLite; a flushed table) means no keeping: the programme is read afresh.
    """
    if stamp is None:
        stamp = current_stamp()
    programme = _live_programme(stamp)
    return with_version(programme, version_id) if version_id is not None else programme


# The programme stamp as a column of a caller's own query (NULL when there is no row).
STAMP_SQL = "(SELECT ps.stamp FROM membership_programmestamp ps WHERE ps.id = 1)"

# (stamp, programme) of this process, replaced whole (threads read it without a lock).
_kept: tuple[int, Programme] | None = None


def current_stamp() -> int | None:
    return ProgrammeStamp.objects.filter(pk=1).values_list("stamp", flat=True).first()


def _live_programme(stamp: int | None) -> Programme:
    global _kept
    kept = _kept
    if stamp is not None and kept is not None and kept[0] == stamp:
        return kept[1]
    programme = _load_live_programme()
    # Read after the stamp: at least as new as the programme the stamp names (a write
    # in between gives a new stamp, so this copy is read again, never served stale).
    if stamp is not None:
        _kept = (stamp, programme)
    return programme


def with_version(programme: Programme, version_id: int) -> Programme:
    """``programme`` with a version's group rules and tier thresholds in place of its own."""
    rules = {
        r["group_id"]: r
        for r in VersionGroupRule.objects.filter(version_id=version_id).values(
            "group_id", "entry_amount", "entry_requires", "metric", "window", "review_period_months"
        )
    }
    thresholds = {
        t["tier_id"]: t
        for t in VersionTierThreshold.objects.filter(version_id=version_id).values(
            "tier_id", "upgrade_threshold", "retention_threshold"
        )
    }
    groups = []
    for g in programme.groups:
        tiers = tuple(
            replace(
                t,
                upgrade=thresholds[t.id]["upgrade_threshold"],
                retention=thresholds[t.id]["retention_threshold"],
            )
            if t.id in thresholds
            else t
            for t in g.tiers
        )
        r = rules.get(g.id)
        if r:
            g = replace(
                g,
                entry_amount=r["entry_amount"],
                entry_requires=r["entry_requires"],
                metric=r["metric"],
                window=r["window"],
                review_months=r["review_period_months"],
            )
        groups.append(replace(g, tiers=tiers))
    return Programme(groups=tuple(groups))


def _load_live_programme() -> Programme:
    tiers_by_group: dict[int, list[TierRule]] = {}
    for t in Tier.objects.order_by("rank").values(
        "id", "group_id", "rank", "name", "upgrade_threshold", "retention_threshold", "upgrade_gift"
    ):
        tiers_by_group.setdefault(t["group_id"], []).append(
            TierRule(
                id=t["id"],
                rank=t["rank"],
                name=t["name"],
                upgrade=t["upgrade_threshold"],
                retention=t["retention_threshold"],
                gift=t["upgrade_gift"],
            )
        )
    tags_by_group: dict[int, list[tuple[int, str]]] = {}
    for row in VipGroup.entry_tags.through.objects.values("vipgroup_id", "tag_id", "tag__name"):
        tags_by_group.setdefault(row["vipgroup_id"], []).append((row["tag_id"], row["tag__name"]))
    groups = []
    for g in VipGroup.objects.order_by("is_default", "priority", "id"):
        tags = sorted(tags_by_group.get(g.id, []), key=lambda x: x[1])
        groups.append(
            GroupRule(
                id=g.id,
                name=g.name,
                priority=g.priority,
                is_default=g.is_default,
                entry_tags=tuple(tags),
                entry_amount=g.entry_amount,
                entry_requires=g.entry_requires,
                metric=g.metric,
                window=g.window,
                review_months=g.review_period_months,
                tiers=tuple(tiers_by_group.get(g.id, [])),
            )
        )
    return Programme(groups=tuple(groups))


# --- what an order counts for ------------------------------------------------

# A paid order counts for its amount less its refunds, and as one order while any of it
# is left. Written once: for SQL (the order table aliased ``o``) and for the ORM (``path``
# leads from the queried model to the order, e.g. "orders__").
NET_SPEND_SQL = "o.amount - o.refunded_amount"
COUNTED_ORDER_SQL = "o.amount > o.refunded_amount"


# Growth points (成長值): what a ledger entry (the points entry table aliased ``e``) adds to
# the points a member earned. Earnings from orders, actions, referrals and birthday
# bonuses count; a refund's reversal takes back its whole share, the part already spent
# (its shortfall) too, so ``points - shortfall``. Redemptions, expiry, partner exchanges,
# operator adjustments and imported opening balances never move it; nor does settling a
# shortfall later (the refund already counted it). The codes are the points app's
# ``source`` values (points.models.SOURCE_LABELS names them all).
GROWTH_EARNING_SOURCES = ("order", "action", "referral", "birthday")
GROWTH_REFUND_SOURCES = ("refund", "referral-refund")
GROWTH_POINTS_SQL = (
    "CASE WHEN e.kind = 'earn' AND e.source IN "
    f"({', '.join(repr(s) for s in GROWTH_EARNING_SOURCES)}) THEN e.points "
    "WHEN e.kind = 'reverse' AND e.source IN "
    f"({', '.join(repr(s) for s in GROWTH_REFUND_SOURCES)}) THEN e.points - e.shortfall "
    "ELSE 0 END"
)


def net_spend(path: str = "") -> CombinedExpression:
    return F(f"{path}amount") - F(f"{path}refunded_amount")


def counted_order(path: str = "") -> Q:
    return Q(**{f"{path}amount__gt": F(f"{path}refunded_amount")})


# --- windows ---------------------------------------------------------------


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later (or earlier), clamped to the month's last day."""
    total = day.year * 12 + day.month - 1 + months
    year, month = divmod(total, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def add_months_local(moment: dt.datetime, months: int) -> dt.datetime:
    """The same local time ``months`` later, on the day ``add_months`` gives."""
    local = timezone.localtime(moment)
    day = add_months(local.date(), months)
    return local.replace(year=day.year, month=day.month, day=day.day)


def local_midnight(day: dt.date) -> dt.datetime:
    """The start of ``day`` in the shop's time zone."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


@dataclass(frozen=True)
class WindowBounds:
    """Where each window starts and ends, for one moment."""

    now: dt.datetime

    @property
    def today(self) -> dt.date:
        return timezone.localdate(self.now)

    def start(self, window: str) -> dt.datetime | None:
        if window == Window.ROLLING_12_MONTHS:
            # Twelve whole months ending today: from the day after this date last year.
            return local_midnight(add_months(self.today, -12) + dt.timedelta(days=1))
        if window == Window.CALENDAR_YEAR:
            return local_midnight(self.today.replace(month=1, day=1))
        return None

    def closes_on(self, window: str) -> dt.date | None:
        """The last day on which spend still counts toward this window's total."""
        if window == Window.CALENDAR_YEAR:
            return self.today.replace(month=12, day=31)
        return None

    @property
    def inactivity_cutoff(self) -> dt.datetime:
        return self.now - dt.timedelta(days=INACTIVITY_DAYS)


@dataclass(frozen=True)
class Metrics:
    """A member's qualifying values: ``values[(metric, window)]`` and the last paid order."""

    values: dict[tuple[str, str], int]
    last_order_at: dt.datetime | None
    # The programme stamp read in the same statement (``STAMP_SQL``), when it was.
    programme_stamp: int | None = None
    # The member's tags and its active grants' tiers, when read with them.
    tag_ids: frozenset[int] | None = None
    grant_tier_ids: frozenset[int] | None = None
    # Whether any member shares this one's tier, when read with them.
    has_sharers: bool | None = None

    def of(self, metric: str, window: str) -> int:
        return self.values.get((metric, window), 0)


# --- the rules --------------------------------------------------------------


@dataclass
class GroupCheck:
    """One group looked at while resolving a member's group: the facts, not prose."""

    group: str
    matched: bool
    is_default: bool = False
    tags_required: list[str] = field(default_factory=list)
    tags_held: list[str] = field(default_factory=list)
    entry_amount: int | None = None
    spend: int = 0
    requires: str = EntryRequires.EITHER

    def as_dict(self) -> dict:
        """``dataclasses.asdict`` without its recursive deep copy, which cost a tenth of a
        millisecond for the checks of every explanation an order's tier move writes."""
        return {
            **self.__dict__,
            "tags_required": list(self.tags_required),
            "tags_held": list(self.tags_held),
        }


def entry_matches(group: GroupRule, tag_ids: frozenset[int], metrics: Metrics) -> GroupCheck:
    """Whether a member meets a group's entry condition, with the facts that decided it."""
    check = GroupCheck(
        group=group.name,
        matched=False,
        is_default=group.is_default,
        tags_required=[name for _, name in group.entry_tags],
        tags_held=[name for tid, name in group.entry_tags if tid in tag_ids],
        entry_amount=group.entry_amount,
        spend=metrics.of(Metric.SPEND, group.window),
        requires=group.entry_requires,
    )
    if group.is_default:
        check.matched = True
    elif group.has_condition:
        has_tag = bool(check.tags_held)
        amount_ok = group.entry_amount is not None and check.spend >= group.entry_amount
        if group.entry_requires == EntryRequires.BOTH:
            check.matched = (not group.entry_tags or has_tag) and (
                group.entry_amount is None or amount_ok
            )
        else:
            check.matched = has_tag or amount_ok
    return check


def resolve_group(
    programme: Programme, tag_ids: frozenset[int], metrics: Metrics
) -> tuple[GroupRule | None, list[GroupCheck]]:
    """The first group, by priority, whose entry condition the member meets."""
    checks = []
    for group in programme.groups:
        check = entry_matches(group, tag_ids, metrics)
        checks.append(check)
        if check.matched:
            return group, checks
    return None, checks


def upgrade_rank(group: GroupRule, value: int) -> int:
    return max((t.rank for t in group.tiers if value >= t.upgrade), default=0)


def retention_rank(group: GroupRule, value: int) -> int:
    return max((t.rank for t in group.tiers if value >= t.retention), default=0)


def next_earned_rank(
    *,
    mode: Mode,
    group: GroupRule,
    group_changed: bool,
    current_rank: int,
    value: int,
    inactive: bool,
) -> int:
    """The earned tier's rank after an evaluation.

    A new group ranks the member afresh. Otherwise upgrades are immediate, a refund
    of the earning order drops the member to what is still met, and only a review
    applies retention thresholds and the inactivity rule.
    """
    up = upgrade_rank(group, value)
    if group_changed:
        return up
    if mode == Mode.UPGRADE:
        return max(current_rank, up)
    if mode == Mode.RERANK:
        return min(current_rank, up)
    kept = max(up, min(current_rank, retention_rank(group, value)))
    if inactive and kept > 1:
        kept = 1
    return kept
