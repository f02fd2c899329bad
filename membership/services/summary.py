"""The member summary (會員摘要): what the member's tier page shows, kept in one row.

One statement computes the rows of any set of members from the tables themselves —
their qualifying value in their group's window, the value that will still count at
their next review, their last 10 orders and last 20 tier changes — and writes them
(``INSERT … SELECT … ON CONFLICT DO UPDATE``). Every writer of those tables calls
``refresh_member_summaries`` inside its own transaction, for one member or for a
whole chunk at once, so a committed change and its summary are never apart.

What moves with the clock alone is not stored as if it were fixed: a row is valid
until the first moment its value could move without a write — the oldest order it
counts leaving a rolling window, 1 January for a calendar year, the next start or end
of one of the member's tier grants — and never more than ``RECHECK_DAYS``. The page
does not read a row past ``valid_until``; the nightly summaries job rewrites those
rows, set-based (a few in a hundred a night, not every row). Points, the plan and
this month's offers are read fresh in the page's one statement (see
``membership.portal``): they are a few indexed rows each, and two of them move with
the clock.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from membership.models import Member, Metric, Window
from membership.sqltime import from_db

from .rules import WindowBounds, local_midnight

RECENT_ORDERS = 10
RECENT_HISTORY = 20
# A row is read for at most this long without a write, whatever else holds: the nightly
# summaries job then writes it again (a bound on anything that moves with the clock).
RECHECK_DAYS = 31
ID_BATCH = 5000  # ids per statement when a writer names its members
FEW = 10  # members named by a writer that are refreshed as one plain statement
# Before any order: the lifetime window's start, as a bound the statement can compare.
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
COLUMNS = (
    "metric",
    "metric_window",
    "value",
    "review_value",
    "review_on",
    "recent_orders",
    "recent_history",
    "computed_at",
    "valid_until",
)


def _db(value):
    """A parameter as the database stores it (SQLite keeps datetimes as UTC text)."""
    if isinstance(value, dt.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, dt.date):
        return connection.ops.adapt_datefield_value(value)
    return value


def _json_sql() -> tuple[str, str]:
    """(object builder, ordered array of the subquery ``x``) in this database's SQL."""
    if connection.vendor == "postgresql":
        return "jsonb_build_object", "COALESCE(jsonb_agg({obj} ORDER BY {order}), '[]'::jsonb)"
    # SQLite keeps the subquery's order in json_group_array.
    return "json_object", "json_group_array({obj})"


# PostgreSQL: each tier holder with ``ids``, its own id and those of the members sharing
# its tier, as an array: the orders are then read by key (as a semi-join the planner may
# still scan every order per member). Named once here, where the three sums and the
# window's edge each spelled the subquery out, which kept the statement of an order's
# refresh past psycopg's 4,096 characters for keeping its parse. (PostgreSQL pulls this
# subquery up and still runs the array's index look-up once per use, as before.)
_HOLDERS_PG = (
    "(SELECT h.id, h.next_review_on, h.group_id, ARRAY(SELECT h.id UNION ALL "
    "SELECT s.id FROM membership_member s WHERE s.tier_holder_id = h.id) AS ids "
    "FROM membership_member h) h"
)


def _sum_sql(start_sql: str) -> str:
    """The holder's qualifying value from ``start_sql`` on, in the holder's group's metric.

    On PostgreSQL one sum over the orders of ``h.ids`` (``_HOLDERS_PG``: the holder's
    id and those of the members sharing its tier), read by key through the orders'
    (member, time) index.
    On SQLite two sums, each through that index: the holder's own orders and the
    sharers'. One subquery there over "the holder or a member sharing its tier" cannot
    use the index, and the planner scanned every order once per member (an import of
    60,000 members took minutes). (PostgreSQL had the two sums too; as one, an order's
    summary statement fits psycopg's 4,096 characters for keeping its parse.)

    Growth points are not kept here (they come from the points ledger, which posts
    without touching this row): 0, and the page computes such members afresh.
    """
    counted = (
        "CASE WHEN g.metric = %(spend)s THEN o.amount - o.refunded_amount "
        "WHEN g.metric = %(order_count)s AND o.amount > o.refunded_amount THEN 1 ELSE 0 END"
    )
    if connection.vendor == "postgresql":
        return (
            f"COALESCE((SELECT SUM({counted}) FROM membership_order o "
            f"WHERE o.member_id = ANY(h.ids) AND o.status = 'paid' "
            f"AND o.placed_at >= {start_sql}), 0)"
        )
    sharing = "SELECT s.id FROM membership_member s WHERE s.tier_holder_id = h.id"
    own = (
        f"COALESCE((SELECT SUM({counted}) FROM membership_order o "
        f"WHERE o.member_id = h.id AND o.status = 'paid' AND o.placed_at >= {start_sql}), 0)"
    )
    sharers = (
        f"COALESCE((SELECT SUM({counted}) FROM membership_order o WHERE o.member_id IN "
        f"({sharing}) AND o.status = 'paid' AND o.placed_at >= {start_sql}), 0)"
    )
    return f"({own} + {sharers})"


def _zone_params(now: dt.datetime) -> dict:
    """The shop's time zone, as each database's date arithmetic takes it."""
    if connection.vendor == "postgresql":
        return {"zone": settings.TIME_ZONE}
    minutes = int(timezone.localtime(now).utcoffset().total_seconds() // 60)
    return {"to_local": f"{minutes:+d} minutes", "to_utc": f"{-minutes:+d} minutes"}


def _window_edge_sql() -> str:
    """When the holder's value next moves with the clock alone (no write), at the latest
    ``RECHECK_DAYS`` ahead.

    A rolling window loses its oldest counted order at local midnight of the same date a
    year after it was placed (PostgreSQL gives 28 February for an order of the 29th: a day
    early, never late); a calendar year restarts on 1 January; a lifetime never moves.
    Any order still to leave is newer than the oldest, so the row holds until then.
    """
    holder_and_sharers = (
        "= ANY(h.ids)"
        if connection.vendor == "postgresql"
        else "IN (SELECT h.id UNION ALL "
        "SELECT s.id FROM membership_member s WHERE s.tier_holder_id = h.id)"
    )
    oldest = (
        f"(SELECT MIN(o.placed_at) FROM membership_order o WHERE o.member_id {holder_and_sharers} "
        "AND o.status = 'paid' AND o.placed_at >= %(rolling_start)s)"
    )
    if connection.vendor == "postgresql":
        leaves = (
            f"((date_trunc('day', {oldest} AT TIME ZONE %(zone)s) + interval '1 year') "
            "AT TIME ZONE %(zone)s)"
        )
    else:
        leaves = f"datetime(date({oldest}, %(to_local)s), '+1 year', %(to_utc)s)"
    leaves = _earliest(leaves, "%(recheck)s")
    return (
        f'(CASE g."window" WHEN %(rolling_key)s THEN COALESCE({leaves}, %(recheck)s) '
        f"WHEN %(calendar_key)s THEN {_earliest('%(new_year)s', '%(recheck)s')} "
        "ELSE %(recheck)s END)"
    )


def _earliest(moment: str, bound: str) -> str:
    """The earlier of ``moment`` and ``bound`` (never NULL), ``bound`` when ``moment`` is
    NULL. PostgreSQL's LEAST names each side once: the CASE repeated them (a statement past
    psycopg's 4,096 characters is parsed again on every run, and the subqueries in them
    could run twice). SQLite has no LEAST (its MIN() of a NULL is NULL)."""
    if connection.vendor == "postgresql":
        return f"LEAST({moment}, {bound})"
    return f"CASE WHEN {moment} < {bound} THEN {moment} ELSE {bound} END"


def _window_start_sql(rolling: str, calendar: str) -> str:
    return (
        f'CASE g."window" WHEN %(rolling_key)s THEN {rolling} '
        f"WHEN %(calendar_key)s THEN {calendar} ELSE %(epoch)s END"
    )


def _review_dates(where: str, params: dict) -> list[dt.date]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT h.next_review_on FROM membership_member m "
            "JOIN membership_member h ON h.id = COALESCE(m.tier_holder_id, m.id) "
            f"WHERE h.next_review_on IS NOT NULL AND ({where})",
            params,
        )
        rows = [r[0] for r in cur.fetchall()]
    return [dt.date.fromisoformat(r) if isinstance(r, str) else r for r in rows]


def _select_sql(
    where: str, where_params: dict, now: dt.datetime, review_dates: list[dt.date] | None = None
) -> tuple[str, dict]:
    """The fresh summary rows of the members ``where`` selects (over ``m``), at ``now``.

    ``review_dates``: their tier holders' review dates, when the caller knows them."""
    bounds = WindowBounds(now)
    params = {
        **where_params,
        "spend": Metric.SPEND.value,
        "order_count": Metric.ORDER_COUNT.value,
        "rolling_key": Window.ROLLING_12_MONTHS.value,
        "calendar_key": Window.CALENDAR_YEAR.value,
        "epoch": EPOCH,
        "rolling_start": bounds.start(Window.ROLLING_12_MONTHS),
        "calendar_start": bounds.start(Window.CALENDAR_YEAR),
        "now": now,
        "new_year": local_midnight(dt.date(bounds.today.year + 1, 1, 1)),
        "recheck": local_midnight(bounds.today + dt.timedelta(days=RECHECK_DAYS)),
        **_zone_params(now),
    }
    # What still counts on the review day: the window as it stands on that day (noon),
    # the rule of ``selectors.value_at_review``, one bound per review date in the set.
    dates = review_dates
    if dates is None:
        dates = _review_dates(where, {k: _db(v) for k, v in {**where_params, "now": now}.items()})
    for i, day in enumerate(dates):
        at_review = WindowBounds(local_midnight(day) + dt.timedelta(hours=12))
        params[f"d{i}"] = day
        params[f"r{i}"] = at_review.start(Window.ROLLING_12_MONTHS)
        params[f"c{i}"] = at_review.start(Window.CALENDAR_YEAR)
    sql = _select_text(where, len(dates), connection.vendor)
    return sql, {k: _db(v) for k, v in params.items()}


@functools.lru_cache(maxsize=64)
def _select_text(where: str, review_dates: int, vendor: str) -> str:
    """``_select_sql``'s statement for ``review_dates`` review dates: built once per shape
    (an order's refresh is one of a few), as building it took a tenth of a millisecond."""
    obj, agg = _json_sql()
    value = _sum_sql(_window_start_sql("%(rolling_start)s", "%(calendar_start)s"))
    review_value = "0"
    if review_dates:
        rolling = [f"WHEN %(d{i})s THEN %(r{i})s" for i in range(review_dates)]
        calendar = [f"WHEN %(d{i})s THEN %(c{i})s" for i in range(review_dates)]
        review_value = (
            "CASE WHEN h.next_review_on IS NULL THEN 0 ELSE "
            + _sum_sql(
                _window_start_sql(
                    f"CASE h.next_review_on {' '.join(rolling)} END",
                    f"CASE h.next_review_on {' '.join(calendar)} END",
                )
            )
            + " END"
        )
    newest_orders = agg.format(obj=f"{obj}({ORDER_FIELDS})", order="x.placed_at DESC, x.id DESC")
    newest_changes = agg.format(
        obj=f"{obj}({HISTORY_FIELDS})", order="x.created_at DESC, x.id DESC"
    )
    orders = (
        f"(SELECT {newest_orders} "
        "FROM (SELECT o.id, o.placed_at, o.amount, o.refunded_amount, o.status "
        "FROM membership_order o WHERE o.member_id = m.id "
        f"ORDER BY o.placed_at DESC, o.id DESC LIMIT {RECENT_ORDERS}) x)"
    )
    history = (
        f"(SELECT {newest_changes} "
        "FROM (SELECT t.id, t.created_at, t.from_group_id, t.from_tier_id, t.to_group_id, "
        "t.to_tier_id, t.cause FROM membership_tierhistory t WHERE t.member_id = m.id "
        f"ORDER BY t.created_at DESC, t.id DESC LIMIT {RECENT_HISTORY}) x)"
    )
    # A tier grant that starts or ends changes the tier then.
    grant_edge = (
        "(SELECT MIN(CASE WHEN gr.starts_at > %(now)s THEN gr.starts_at ELSE gr.ends_at END) "
        "FROM membership_tiergrant gr WHERE gr.member_id = h.id AND gr.ends_at > %(now)s)"
    )
    window_edge = _window_edge_sql()
    until = _earliest(grant_edge, window_edge)
    # The members selected, read once (``where`` may be an anti-join on these very rows,
    # which the INSERT fills as it goes), each with its tier holder.
    pg = vendor == "postgresql"
    targets = (
        f"targets {'AS MATERIALIZED' if pg else 'AS'} (SELECT m.id, "
        f"COALESCE(m.tier_holder_id, m.id) AS holder_id FROM membership_member m WHERE {where})"
    )
    # What the holder's row gives every member sharing its tier, computed once per holder
    # and joined to them: computed per member, a holder with 2,000 sub-accounts summed its
    # sub-accounts' orders 2,000 times over (10 s for one order; minutes at 20,000). The
    # fence keeps PostgreSQL from pulling the subquery up into the per-member join.
    holders = (
        """SELECT h.id, h.next_review_on, g.metric, g."window", """
        f"CASE WHEN g.id IS NULL THEN 0 ELSE {value} END AS value, "
        f"CASE WHEN g.id IS NULL THEN 0 ELSE {review_value} END AS review_value, "
        f"{until} AS valid_until "
        f"FROM {_HOLDERS_PG if pg else 'membership_member h'} "
        "LEFT JOIN membership_vipgroup g ON g.id = h.group_id "
        f"WHERE h.id IN (SELECT t.holder_id FROM targets t){' OFFSET 0' if pg else ''}"
    )
    sql = (
        f"WITH {targets} "
        "SELECT m.id AS member_id, COALESCE(hv.metric, '') AS metric, "
        """COALESCE(hv."window", '') AS metric_window, hv.value, hv.review_value, """
        "hv.next_review_on AS review_on, "
        f"{orders} AS recent_orders, {history} AS recent_history, "
        "%(now)s AS computed_at, hv.valid_until "
        "FROM targets t JOIN membership_member m ON m.id = t.id "
        f"JOIN ({holders}) hv ON hv.id = t.holder_id "
        "WHERE 1 = 1"  # SQLite: an upsert's SELECT needs a WHERE to parse
    )
    return sql


ORDER_FIELDS = (
    "'id', x.id, 'placed_at', x.placed_at, 'amount', x.amount, "
    "'refunded_amount', x.refunded_amount, 'status', x.status"
)
HISTORY_FIELDS = (
    "'created_at', x.created_at, 'from_group_id', x.from_group_id, "
    "'from_tier_id', x.from_tier_id, 'to_group_id', x.to_group_id, "
    "'to_tier_id', x.to_tier_id, 'cause', x.cause"
)


def _members_of(ids_sql: str) -> str:
    """Members ``ids_sql`` names, with their tier holders and everyone sharing a tier with
    them: a sharer's summary is its holder's value.

    One set of ids, each part read by key (three ORed IN tests on ``m`` made the planner
    scan every member for a single order's refresh: 1.2 s at 200,000 members).
    """
    return (
        "m.id IN ("
        f"SELECT x.id FROM membership_member x WHERE x.id IN ({ids_sql}) "
        "UNION SELECT x.tier_holder_id FROM membership_member x "
        f"WHERE x.id IN ({ids_sql}) "
        "UNION SELECT s.id FROM membership_member s WHERE s.tier_holder_id IN "
        "(SELECT COALESCE(x.tier_holder_id, x.id) FROM membership_member x "
        f"WHERE x.id IN ({ids_sql})))"
    )


def _write(
    where: str,
    params: dict,
    now: dt.datetime,
    *,
    chunk: bool = True,
    review_dates: list[dt.date] | None = None,
) -> int:
    select, select_params = _select_sql(where, params, now, review_dates)
    updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS)
    sql = (
        f"INSERT INTO membership_membersummary (member_id, {', '.join(COLUMNS)}) "
        f"{select} ON CONFLICT (member_id) DO UPDATE SET {updates}"
    )
    if not chunk:
        # A few members (an order's, a refund's): one statement is atomic alone — no
        # savepoint, no SET LOCAL (three round trips). JIT is off for the connection
        # (settings, DB_JIT): a holder with many sub-accounts estimates past its threshold.
        with connection.cursor() as cur:
            cur.execute(sql, select_params)
            return cur.rowcount
    with transaction.atomic(), connection.cursor() as cur:
        if connection.vendor == "postgresql":
            # A chunk's estimate turns JIT on, whose compile time would be most of the run.
            cur.execute("SET LOCAL jit = off")
        cur.execute(sql, select_params)
        return cur.rowcount


def refresh_member_summaries(
    *,
    member_ids: Iterable[int] | None = None,
    ids_sql: str | None = None,
    ids_params: dict | None = None,
    now: dt.datetime | None = None,
    review_dates: Iterable[dt.date] | None = None,
) -> int:
    """Rewrite the summaries of ``member_ids`` (or of the ids ``ids_sql`` selects), their
    tier holders and sharers, in one statement, inside the caller's transaction.

    Call it after the change, in the same transaction. Idempotent. ``review_dates``: the
    tier holders' ``next_review_on`` dates (without None), from a caller that holds
    their locks and has just written them (an evaluation), saving a query to read them.
    """
    review_dates = sorted(set(review_dates)) if review_dates is not None else None
    now = now or timezone.now()
    if ids_sql is not None:
        return _write(_members_of(ids_sql), ids_params or {}, now)
    ids = sorted({int(i) for i in member_ids or ()})
    written = 0
    for start in range(0, len(ids), ID_BATCH):
        part = ids[start : start + ID_BATCH]
        chunk = len(part) > FEW
        if connection.vendor == "postgresql" and len(part) == 1:
            # One member (an order's): the id as a plain value, not an array. The statement
            # is prepared (settings: server-side binding), and PostgreSQL's generic plan for
            # it estimates an array parameter at ten members, so it planned the statement
            # afresh on every run (1.2 ms, more than running it); for one id the generic
            # plan is the custom one and is kept.
            written += _write(
                _members_of("%(id)s"), {"id": part[0]}, now, chunk=False, review_dates=review_dates
            )
            continue
        if connection.vendor == "postgresql":
            # A hashed set: a long IN list below would be searched row by row.
            written += _write(
                _members_of("SELECT unnest(CAST(%(ids)s AS bigint[]))"),
                {"ids": part},
                now,
                chunk=chunk,
                review_dates=review_dates,
            )
            continue
        written += _write(
            _members_of("VALUES " + ", ".join(f"(%(i{n})s)" for n in range(len(part)))),
            {f"i{n}": pk for n, pk in enumerate(part)},
            now,
            chunk=chunk,
            review_dates=review_dates,
        )
    return written


def drop_member_summaries(
    *, ids_sql: str, ids_params: dict | None = None, sharers: bool = True, owe: bool = True
) -> int:
    """Delete the summaries of the members ``ids_sql`` selects (with their holders and
    sharers), inside the caller's transaction, and owe their rebuild after the commit.

    For a change that moves many members at once (a recompute chunk): rewriting each
    row in the same transaction costs more than the change itself, while a member
    without a row is shown their page computed afresh (``selectors.member_page``), so
    nothing stale is ever read. The summaries job writes the rows again, set-based.
    ``sharers=False`` (no member shares a tier holder's tier) deletes the named rows only.
    ``owe=False``: the caller owes the rebuild itself (``owe_dropped_summaries``).
    """
    from membership import outbox

    with connection.cursor() as cur:
        members = (
            f"SELECT m.id FROM membership_member m WHERE {_members_of(ids_sql)}"
            if sharers
            else ids_sql
        )
        cur.execute(
            f"DELETE FROM membership_membersummary WHERE member_id IN ({members})",
            ids_params or {},
        )
        dropped = cur.rowcount
    if dropped and owe:
        outbox.enqueue("membership.tasks.refresh_member_summaries")
    return dropped


def owe_dropped_summaries() -> bool:
    """Owe the summaries job if any member has no summary row (a batch job's last step,
    after chunks that dropped rows without owing them). True when owed."""
    from membership import outbox

    if not Member.objects.filter(summary__isnull=True).exists():
        return False
    outbox.enqueue("membership.tasks.refresh_member_summaries")
    return True


def rebuild_summary_range(
    *, id_from: int, id_to: int, now: dt.datetime, expired_only: bool = True
) -> int:
    """One chunk of the summaries job: the rows of members ``id_from``–``id_to`` that are
    missing or past ``valid_until`` (every row with ``expired_only=False``)."""
    return _write(*_range_where(id_from, id_to, now, expired_only), now)


def _range_where(lo: int, hi: int, now: dt.datetime, expired_only: bool) -> tuple[str, dict]:
    where, params = "m.id BETWEEN %(lo)s AND %(hi)s", {"lo": lo, "hi": hi}
    if expired_only:
        where += (
            " AND NOT EXISTS (SELECT 1 FROM membership_membersummary ms "
            "WHERE ms.member_id = m.id AND ms.valid_until > %(now)s)"
        )
    return where, params


def _ranges(chunk: int) -> Iterator[tuple[int, int]]:
    pks = Member.objects.order_by()
    lo = pks.order_by("pk").values_list("pk", flat=True).first()
    hi = pks.order_by("-pk").values_list("pk", flat=True).first()
    if lo is None:
        return
    for start in range(lo, hi + 1, chunk):
        yield start, start + chunk - 1


def rebuild_member_summaries(
    *, chunk: int | None = None, now: dt.datetime | None = None, expired_only: bool = False
) -> int:
    """Rewrite every member's summary (or only those past ``valid_until``), one statement
    and one transaction per range of member ids. Returns how many rows were written."""
    now = now or timezone.now()
    written = 0
    for lo, hi in _ranges(chunk or settings.MEMBERSHIP_RECOMPUTE_CHUNK):
        written += _write(*_range_where(lo, hi, now, expired_only), now)
    return written


@dataclass
class Disagreement:
    member_id: int
    field: str
    stored: object
    fresh: object


def _normalise(column: str, value):
    if column in ("recent_orders", "recent_history"):
        rows = json.loads(value) if isinstance(value, str) else (value or [])
        return [
            {k: (_moment(v) if k in ("placed_at", "created_at") else v) for k, v in r.items()}
            for r in rows
        ]
    if column in ("value", "review_value"):
        return int(value)  # PostgreSQL's SUM is numeric
    if column == "review_on" and isinstance(value, dt.date):
        return value.isoformat()
    return value


def _aware(moment: dt.datetime) -> dt.datetime:
    # SQLite's converters hand back naive UTC.
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt.UTC)


def _moment(value):
    """A time inside the stored JSON, as an aware datetime (either database's text form)."""
    if value is None:
        return None
    moment = dt.datetime.fromisoformat(value.replace(" ", "T"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def summary_disagreements(
    *, chunk: int = 10_000, now: dt.datetime | None = None
) -> Iterator[Disagreement]:
    """Every summary the page would read now, compared with a fresh computation.

    Chunked by member id. A member without a row is a disagreement (the page then
    computes afresh, slower, but a writer forgot its summary); a row past its
    ``valid_until``, or of a group ranked by growth points, is not read by the page and
    is not compared.
    """
    now = now or timezone.now()
    compared = ("metric", "metric_window", "value", "review_value", "review_on")
    compared += ("recent_orders", "recent_history")
    for lo, hi in _ranges(chunk):
        select, params = _select_sql("m.id BETWEEN %(lo)s AND %(hi)s", {"lo": lo, "hi": hi}, now)
        stored_sql = (
            f"SELECT member_id, {', '.join(compared)}, valid_until FROM membership_membersummary "
            "WHERE member_id BETWEEN %s AND %s"
        )
        with transaction.atomic(), connection.cursor() as cur:
            if connection.vendor == "postgresql":
                cur.execute("SET LOCAL jit = off")
            cur.execute(select, params)
            names = [c[0] for c in cur.description]
            fresh = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
            cur.execute(stored_sql, [lo, hi])
            stored = {
                r[0]: dict(zip(("member_id", *compared, "valid_until"), r, strict=True))
                for r in cur.fetchall()
            }
        for member_id, row in fresh.items():
            if row["metric"] == Metric.GROWTH_POINTS:
                continue  # the page computes these afresh (see ``selectors.member_page``)
            old = stored.get(member_id)
            if old is None:
                yield Disagreement(member_id, "row", None, "missing")
                continue
            if _aware(from_db(old["valid_until"])) <= now:
                continue
            for column in compared:
                a, b = _normalise(column, old[column]), _normalise(column, row[column])
                if a != b:
                    yield Disagreement(member_id, column, a, b)


@dataclass
class RecentOrder:
    pk: int
    placed_at: dt.datetime
    amount: int
    refunded_amount: int
    url: str = ""

    @property
    def placed_on(self) -> str:
        """The day it was placed in the current time zone, as the page writes it (Y-m-d):
        cheaper than the template's date filter, ten times a page."""
        return timezone.localtime(self.placed_at).date().isoformat()


@dataclass
class RecentChange:
    created_at: dt.datetime
    from_group_id: int | None
    from_tier_id: int | None
    to_group_id: int | None
    to_tier_id: int | None
    cause: str


def recent_orders(summary, url_of) -> list[RecentOrder]:
    return [
        RecentOrder(
            r["id"], _moment(r["placed_at"]), r["amount"], r["refunded_amount"], url_of(r["id"])
        )
        for r in summary.recent_orders
    ]


def recent_history(summary) -> list[RecentChange]:
    return [
        RecentChange(
            _moment(r["created_at"]),
            r["from_group_id"],
            r["from_tier_id"],
            r["to_group_id"],
            r["to_tier_id"],
            r["cause"],
        )
        for r in summary.recent_history
    ]


__all__ = [
    "rebuild_member_summaries",
    "refresh_member_summaries",
    "summary_disagreements",
]
