"""Impact preview of a programme version: who it moves, set-based, writing nothing.

The recompute's own statement (``bulk._changes_sql``) is built with the draft's rules
in review mode over everyone (``due_only=False``); it already carries, per member, the
rank the upgrade thresholds give (``up_rank``), the rank a review would keep
(``new_rank``) and whether the group changes. One pass per chunk of members folds
those rows into movements with their counts, the gifts and e-mails the switch would
cause, and three sample ids each. Publishing runs the same statement in upgrade mode,
so "up at once" and "changes group" here are the rows the switch writes.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

from membership.models import Member, ProgrammeVersion

from .audit import record_audit
from .bulk import _case, _changes_sql, _chunks, _Sql
from .evaluation import evaluate
from .rules import Mode, Programme, WindowBounds, load_programme

SAMPLES = 3
UP, DOWN, GROUP = "up", "down", "group"


@dataclass
class Movement:
    kind: str  # UP (at once), DOWN (at the next review), GROUP (at once)
    from_group: str
    from_tier: str
    to_group: str
    to_tier: str
    count: int = 0
    gifts: int = 0
    emails: int = 0
    sample_ids: list[int] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)  # {"member", "explanation"}

    @property
    def label(self) -> str:
        return {
            UP: _("Moves up at once"),
            DOWN: _("Moves down at the next review"),
            GROUP: _("Changes group at once"),
        }[self.kind]


@dataclass
class Preview:
    version: ProgrammeVersion
    at: dt.datetime
    movements: list[Movement]
    mix: list[tuple[str, int, int, int]]  # (group · tier, today, at once, after reviews)

    def total(self, kind: str) -> int:
        return sum(m.count for m in self.movements if m.kind == kind)

    @property
    def up(self) -> int:
        return self.total(UP)

    @property
    def down(self) -> int:
        return self.total(DOWN)

    @property
    def group_changes(self) -> int:
        return self.total(GROUP)

    @property
    def gifts(self) -> int:
        return sum(m.gifts for m in self.movements)

    @property
    def emails(self) -> int:
        return sum(m.emails for m in self.movements)


def _preview_sql(q: _Sql, programme: Programme, bounds: WindowBounds, member_filter) -> str:
    changes = _changes_sql(
        q, programme, bounds, Mode.REVIEW, member_filter, shared=False, due_only=False
    )
    gift_tier = _case(
        "s.new_group",
        [
            (g.id, _case("s.up_rank", [(t.rank, t.id) for t in g.tiers if t.gift]))
            for g in programme.groups
        ],
    )
    at_once = "(s.group_changed = 1 OR s.up_rank > s.old_rank)"
    moves = (
        f"SELECT s.id, s.old_group, s.old_earned, s.new_group, s.old_rank, "
        f"CASE WHEN s.group_changed = 1 THEN 'group' WHEN s.up_rank > s.old_rank THEN 'up' "
        "ELSE 'down' END AS kind, "
        f"CASE WHEN {at_once} THEN s.up_rank ELSE s.new_rank END AS to_rank, "
        f"CASE WHEN {at_once} THEN {gift_tier} ELSE NULL END AS gift_tier "
        f"FROM ({changes}) s WHERE {at_once} OR s.new_rank < s.old_rank"
    )
    counted = (
        "SELECT c.*, CASE WHEN c.gift_tier IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
        "membership_giftissue gi WHERE gi.member_id = c.id AND gi.tier_id = c.gift_tier) "
        "THEN 1 ELSE 0 END AS gift, "
        "CASE WHEN c.kind <> 'down' AND mm.email <> '' THEN 1 ELSE 0 END AS mail "
        f"FROM ({moves}) c JOIN membership_member mm ON mm.id = c.id "
        # The chunk's filter again: the planner then reads the chunk's members by key
        # rather than hashing the whole table for the few who move.
        f"AND {member_filter(q, 'mm.id')}"
    )
    part = "PARTITION BY k.kind, k.old_group, k.old_earned, k.new_group, k.to_rank"
    return (
        "SELECT w.kind, w.old_group, w.old_earned, w.new_group, w.to_rank, w.id, w.n, "
        "w.gifts, w.mails FROM (SELECT k.*, "
        f"ROW_NUMBER() OVER ({part} ORDER BY k.id) AS rn, COUNT(*) OVER ({part}) AS n, "
        f"SUM(k.gift) OVER ({part}) AS gifts, SUM(k.mail) OVER ({part}) AS mails "
        f"FROM ({counted}) k) w WHERE w.rn <= {SAMPLES}"
    )


def preview(
    version: ProgrammeVersion,
    *,
    actor=None,
    now: dt.datetime | None = None,
    chunk: int | None = None,
    explain: bool = True,
) -> Preview:
    """What making ``version`` live would do to today's members; nothing is written but
    the audit entry saying who previewed it."""
    now = now or timezone.now()
    bounds = WindowBounds(now)
    programme = load_programme(version.pk)
    groups = {g.id: g for g in programme.groups}
    tier_names = {t.id: (g.name, t.name) for g in programme.groups for t in g.tiers}
    movements: dict[tuple, Movement] = {}
    for rows in _chunk_rows(programme, bounds, chunk or settings.MEMBERSHIP_RECOMPUTE_CHUNK):
        counted_in_chunk: set[tuple] = set()  # the window totals repeat on each sample row
        for kind, old_group, old_earned, new_group, to_rank, member_id, n, gifts, mails in rows:
            key = (kind, old_group, old_earned, new_group, to_rank)
            move = movements.get(key)
            if move is None:
                group = groups.get(new_group)
                to = group.tier_at(to_rank) if group and to_rank else None
                from_group = groups.get(old_group)
                move = movements[key] = Movement(
                    kind=kind,
                    from_group=from_group.name if from_group else "—",
                    from_tier=tier_names.get(old_earned, ("", _("no tier")))[1],
                    to_group=group.name if group else "—",
                    to_tier=to.name if to else _("no tier"),
                )
            if len(move.sample_ids) < SAMPLES:
                move.sample_ids.append(member_id)
            if key not in counted_in_chunk:
                counted_in_chunk.add(key)
                move.count += int(n)
                move.gifts += int(gifts or 0)
                move.emails += int(mails or 0)
    ordered = sorted(
        movements.values(), key=lambda m: ({GROUP: 0, UP: 1, DOWN: 2}[m.kind], -m.count)
    )
    if explain:
        members = Member.objects.in_bulk([i for m in ordered for i in m.sample_ids])
        for move in ordered:
            for member_id in move.sample_ids:
                member = members[member_id]
                mode = Mode.REVIEW if move.kind == DOWN else Mode.UPGRADE
                ev = evaluate(member, mode=mode, programme=programme, now=now)
                move.samples.append({"member": member, "explanation": ev.explanation()})
    result = Preview(version=version, at=now, movements=ordered, mix=_mix(programme, movements))
    record_audit(
        actor=actor,
        action="programmeversion.preview",
        obj=version,
        after={"up": result.up, "down": result.down, "group": result.group_changes},
    )
    return result


def _chunk_rows(programme: Programme, bounds: WindowBounds, chunk: int) -> Iterator[list]:
    """The preview statement's rows, one list per chunk of members.

    On PostgreSQL, outside a transaction, the chunks are read on ``PREVIEW_WORKERS``
    connections at once (each its own thread): the preview writes nothing, so the
    chunks need no common snapshot, and the operator waits for the slowest chunk rather
    than for their sum. Inside a transaction (tests, a caller's atomic block) the other
    connections could not see its rows, so the chunks are read one after another here.
    """
    filters = list(_chunks(None, chunk))
    workers = min(settings.PREVIEW_WORKERS, len(filters))
    if workers <= 1 or connection.vendor != "postgresql" or connection.in_atomic_block:
        yield from (_read_chunk(programme, bounds, f) for f in filters)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(partial(_read_chunk_apart, programme, bounds), filters)


def _read_chunk(programme: Programme, bounds: WindowBounds, member_filter) -> list:
    q = _Sql()
    sql = _preview_sql(q, programme, bounds, member_filter)
    with transaction.atomic(), connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SET LOCAL jit = off")  # as the recompute: JIT compile dominates
        cur.execute(sql, q.params)
        return cur.fetchall()


def _read_chunk_apart(programme: Programme, bounds: WindowBounds, member_filter) -> list:
    """``_read_chunk`` on this thread's own connection, closed afterwards."""
    try:
        return _read_chunk(programme, bounds, member_filter)
    finally:
        connections.close_all()


def _mix(programme: Programme, movements: dict[tuple, Movement]) -> list[tuple[str, int, int, int]]:
    """Members per group and earned tier: today, right after the switch, after every review."""
    today: Counter = Counter()
    for group_id, tier_id, n in _count_by_tier():
        today[(group_id, tier_id)] += n
    rank_tier = {(g.id, t.rank): t.id for g in programme.groups for t in g.tiers}
    at_once, after = Counter(today), Counter(today)
    for (kind, old_group, old_earned, new_group, to_rank), move in movements.items():
        target = (new_group, rank_tier.get((new_group, to_rank)))
        for mix in (after,) if kind == DOWN else (at_once, after):
            mix[(old_group, old_earned)] -= move.count
            mix[target] += move.count
    rows = []
    for g in programme.groups:
        for tier_id, name in [(None, _("no tier")), *((t.id, t.name) for t in g.tiers)]:
            key = (g.id, tier_id)
            if today[key] or at_once[key] or after[key]:  # tiers nobody holds, before or after
                rows.append((f"{g.name} · {name}", today[key], at_once[key], after[key]))
    return rows


def _count_by_tier():
    return (
        Member.objects.filter(tier_holder__isnull=True, group__isnull=False)
        .values_list("group_id", "earned_tier_id")
        .annotate(n=Count("id"))
        .order_by()
    )


def chart_svg(result: Preview) -> str:
    """Today's tier mix against the draft's, as a standalone SVG (no script)."""
    import pygal

    style = pygal.style.Style(
        font_family="'Noto Sans CJK TC', 'Noto Sans TC', 'PingFang TC', sans-serif",
        background="white",
        plot_background="white",
    )
    chart = pygal.Bar(
        title=_("Members per tier: today and under %(version)s") % {"version": result.version},
        js=[],
        style=style,
        width=900,
        height=380,
        legend_at_bottom=True,
        x_label_rotation=30,
    )
    chart.x_labels = [row[0] for row in result.mix]
    chart.add(_("Today"), [row[1] for row in result.mix])
    chart.add(_("Right after publishing"), [row[2] for row in result.mix])
    chart.add(_("After every review"), [row[3] for row in result.mix])
    return chart.render(is_unicode=True)
