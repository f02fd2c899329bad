"""What the KPI dashboard shows, read from the snapshots (never from the orders themselves).

Each chart comes with its table (the same numbers) so it can be read without the
picture and downloaded as CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import pygal
from django.conf import settings
from django.db.models import Max
from django.utils import formats
from django.utils.translation import gettext as _

from membership.models import Tier, VipGroup

from .kpis import SMALL_GROUP_SHARE
from .models import Lifecycle, SegmentSnapshot, TierSnapshot


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list]


def _ratio(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _per(total: int, count: int) -> int | None:
    if not count:
        return None
    return int((Decimal(total) / Decimal(count)).quantize(Decimal(1), ROUND_HALF_UP))


def latest_day():
    return TierSnapshot.objects.aggregate(day=Max("day"))["day"]


def _names() -> tuple[dict, dict]:
    groups = dict(VipGroup.objects.values_list("pk", "name"))
    tiers = {t.pk: t for t in Tier.objects.all()}
    return groups, tiers


def tier_figures(day=None) -> dict:
    """Per group and tier on ``day`` (default the latest): the dashboard's main table."""
    day = day or latest_day()
    rows = list(TierSnapshot.objects.filter(day=day).order_by("group_id", "tier_id"))
    groups, tiers = _names()
    total = sum(r.members for r in rows)
    by_group: dict = {}
    for r in rows:
        by_group.setdefault(r.group_id, []).append(r)
    value = Decimal(str(settings.POINTS_NTD_PER_POINT))
    out = []
    for group_id, group_rows in sorted(
        by_group.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)
    ):
        members = sum(r.members for r in group_rows)
        share = _ratio(members, total)
        out.append(
            {
                "group": groups.get(group_id, _("Not placed yet")),
                "members": members,
                "share": share,
                "small": share is not None and share < SMALL_GROUP_SHARE,
                "tiers": [
                    {
                        "tier": tiers[r.tier_id].name if r.tier_id in tiers else _("No tier"),
                        "rank": tiers[r.tier_id].rank if r.tier_id in tiers else 0,
                        "members": r.members,
                        "share": _ratio(r.members, total),
                        "average_spend": _per(r.spend, r.members),
                        "repurchase_rate": _ratio(r.repeat_buyers, r.buyers),
                        "active_share": _ratio(r.active, r.members),
                        "upgrades": r.upgrades,
                        "downgrades": r.downgrades,
                        "clv": _per(r.lifetime_spend, r.members),
                        "points": r.points,
                        "points_value": int(
                            (Decimal(r.points) * value).quantize(Decimal(1), ROUND_HALF_UP)
                        ),
                    }
                    for r in sorted(
                        group_rows, key=lambda r: tiers[r.tier_id].rank if r.tier_id else 0
                    )
                ],
            }
        )
    points = sum(r.points for r in rows)
    return {
        "day": day,
        "members": total,
        "groups": out,
        "points": points,
        "points_value": int((Decimal(points) * value).quantize(Decimal(1), ROUND_HALF_UP)),
    }


def _month_days() -> list:
    """The last snapshot day of each month, oldest first (at most 13)."""
    days = TierSnapshot.objects.values_list("day", flat=True).distinct().order_by("day")
    last: dict = {}
    for day in days:
        last[(day.year, day.month)] = day
    return list(last.values())[-13:]


def _label(day) -> str:
    return formats.date_format(day, "Y-m")


def tier_mix_table() -> Table:
    days = _month_days()
    groups, tiers = _names()
    counts: dict = {}
    for r in TierSnapshot.objects.filter(day__in=days):
        key = (groups.get(r.group_id, "—"), tiers[r.tier_id].name if r.tier_id else _("No tier"))
        counts.setdefault(key, {})[r.day] = r.members
    return Table(
        title=_("Tier mix at each month's end"),
        header=[_("VIP group"), _("tier"), *[_label(d) for d in days]],
        rows=[[g, t, *[series.get(d, 0) for d in days]] for (g, t), series in counts.items()],
    )


def movements_table() -> Table:
    days = _month_days()
    ups = dict.fromkeys(days, 0)
    downs = dict.fromkeys(days, 0)
    for r in TierSnapshot.objects.filter(day__in=days):
        ups[r.day] += r.upgrades
        downs[r.day] += r.downgrades
    return Table(
        title=_("Upgrades and downgrades per month"),
        header=[_("month"), _("upgrades"), _("downgrades")],
        rows=[[_label(d), ups[d], downs[d]] for d in days],
    )


def rfm_grid_table() -> Table:
    snapshot = SegmentSnapshot.objects.order_by("-day").first()
    grid = snapshot.rfm_grid if snapshot else {}
    return Table(
        title=_("RFM grid: members by R (rows) and F (columns)"),
        header=["R \\ F", *[str(f) for f in range(1, 6)]],
        rows=[[str(r), *[grid.get(f"{r}{f}", 0) for f in range(1, 6)]] for r in range(5, 0, -1)],
    )


def lifecycle_table() -> Table:
    snapshot = SegmentSnapshot.objects.order_by("-day").first()
    stages = snapshot.lifecycle if snapshot else {}
    return Table(
        title=_("Lifecycle funnel"),
        header=[_("lifecycle stage"), _("members")],
        rows=[[str(stage.label), stages.get(stage.value, 0)] for stage in Lifecycle],
    )


TABLES = {
    "tier_mix": tier_mix_table,
    "movements": movements_table,
    "rfm_grid": rfm_grid_table,
    "lifecycle": lifecycle_table,
}


def heat_levels(table: Table) -> list[list[tuple[int, int]]]:
    """Each grid cell with a shade 0–9 by its share of the largest cell (CSS classes)."""
    top = max([c for row in table.rows for c in row[1:]] or [0]) or 1
    return [[(c, min(9, c * 10 // top)) for c in row[1:]] for row in table.rows]


def _style() -> pygal.style.Style:
    return pygal.style.Style(
        font_family="'Noto Sans CJK TC', 'Noto Sans TC', 'PingFang TC', sans-serif",
        background="white",
        plot_background="white",
    )


def chart_svg(name: str) -> str:
    """The chart as a standalone SVG document (no script), for an <img>."""
    table = TABLES[name]()
    options = {"js": [], "style": _style(), "width": 640, "height": 360, "legend_at_bottom": True}
    # Thirteen months side by side: "2026-03" whole and slanted, not cut to "2026-…".
    months = {"x_label_rotation": 40, "truncate_label": -1}
    if name == "tier_mix":
        chart = pygal.StackedBar(title=table.title, **options, **months)
        chart.x_labels = table.header[2:]
        for row in table.rows:
            chart.add(f"{row[0]} · {row[1]}", row[2:])
    elif name == "movements":
        chart = pygal.Bar(title=table.title, **options, **months)
        chart.x_labels = [row[0] for row in table.rows]
        chart.add(table.header[1], [row[1] for row in table.rows])
        chart.add(table.header[2], [row[2] for row in table.rows])
    elif name == "lifecycle":
        chart = pygal.HorizontalBar(title=table.title, **options)
        for row in table.rows:
            chart.add(row[0], [row[1]])
    else:
        raise KeyError(name)
    return chart.render(is_unicode=True)
