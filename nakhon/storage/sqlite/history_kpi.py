"""Reductions for indicators on SQLite (``history_base``: histogram, state durations, drops,
and the "written since" look-up of late data)."""

from __future__ import annotations

import sqlite3
from typing import Any

from nakhon.storage.history_base import (
    Buckets,
    DropQuery,
    DropRow,
    HistogramQuery,
    HistogramRow,
    StateQuery,
    StateRow,
    WrittenQuery,
)

from .history_sql import renumber, to_ms, window_sql
from .series import sid_sql

_SID = sid_sql(3)

# --- reductions for indicators (history_base: HistogramQuery, StateQuery, DropQuery) ---------
#
# One statement per pair, as the instance reads: an index seek on (tenant, entity, attr) then
# a range scan of the window, grouped per bucket inside SQLite. Parameters are numbered:
# ?1 origin and ?2 bucket length (ms), ?3..?5 tenant, entity, attribute, then the rest.


def _reduction_params(
    tenant: str, entity_id: str, attr: str, buckets: Buckets
) -> tuple[str, list[Any]]:
    if buckets.seconds <= 0:
        raise ValueError("indicator reductions need fixed-length buckets (seconds > 0)")
    params: list[Any] = [to_ms(buckets.origin), buckets.seconds * 1000, tenant, entity_id, attr]
    # Floor division that stays right for times before the origin.
    return "((ts_ms - ?1) - ((((ts_ms - ?1) % ?2) + ?2) % ?2)) / ?2", params


def _floor(expr: str) -> str:
    """floor() without SQLite's optional math functions (CAST truncates toward zero)."""
    return (
        f"(CASE WHEN {expr} < CAST({expr} AS INTEGER) THEN CAST({expr} AS INTEGER) - 1"
        f" ELSE CAST({expr} AS INTEGER) END)"
    )


def value_histogram(conn: sqlite3.Connection, query: HistogramQuery) -> list[HistogramRow]:
    """Counts per (bucket, floor(num / width)) over the covering index, merged over pairs."""
    acc: dict[tuple[int, int], list[Any]] = {}
    for entity_id, attr in query.pairs:
        bucket, params = _reduction_params(query.tenant, entity_id, attr, query.buckets)
        params.append(query.width)
        where = window_sql(query.window, params)
        if query.min_value is not None:
            where += " AND num >= ?"
            params.append(query.min_value)
        where = renumber(where, 7)
        rows = conn.execute(
            f"SELECT b, {_floor('num / ?6')} AS bin, count(*), sum(num)"
            f" FROM (SELECT {bucket} AS b, num FROM attr_history"
            f"  WHERE sid = {_SID}{where} AND num IS NOT NULL)"
            " GROUP BY b, bin",
            params,
        )
        for b, k, n, total in rows:
            slot = acc.get((b, k))
            if slot is None:
                acc[(b, k)] = [n, total]
            else:
                slot[0] += n
                slot[1] += total
    return [HistogramRow(b, k, n, float(s)) for (b, k), (n, s) in sorted(acc.items())]


def state_durations(conn: sqlite3.Connection, query: StateQuery) -> list[StateRow]:
    """LEAD over (time, hid) per bucket gives each instance its holding time; string values
    come from the index (``txt``)."""
    out: list[StateRow] = []
    for entity_id, attr in query.pairs:
        bucket, params = _reduction_params(query.tenant, entity_id, attr, query.buckets)
        params.append(to_ms(query.until))
        where = renumber(window_sql(query.window, params), 7)
        # Short strings come from the index (txt); only a longer one (num and txt both NULL)
        # reads its instance — SQLite seeks the table row only when the CASE gets there.
        rows = conn.execute(
            "SELECT b, v, sum(u - t) FROM ("
            " SELECT b, t, deleted, v,"
            "  coalesce(lead(t) OVER (PARTITION BY b ORDER BY t, hid),"
            "   min(?1 + (b + 1) * ?2, ?6)) AS u"
            f" FROM (SELECT {bucket} AS b, ts_ms AS t, hid, deleted, CASE"
            "   WHEN txt IS NOT NULL THEN txt WHEN num IS NOT NULL THEN NULL"
            "   WHEN json_type(instance, '$.value') = 'text'"
            "   THEN json_extract(instance, '$.value') END AS v FROM attr_history"
            f"  WHERE sid = {_SID}{where}))"
            " WHERE v IS NOT NULL AND NOT deleted AND u > t GROUP BY b, v ORDER BY b, v",
            params,
        )
        for b, v, ms in rows:
            out.append(StateRow(entity_id, attr, int(b), v, ms / 1000.0))
    return out


def value_drops(conn: sqlite3.Connection, query: DropQuery) -> list[DropRow]:
    """LAG over the numeric values per bucket, index-only (hid is the rowid)."""
    out: list[DropRow] = []
    for entity_id, attr in query.pairs:
        bucket, params = _reduction_params(query.tenant, entity_id, attr, query.buckets)
        params.append(query.drop)
        where = renumber(window_sql(query.window, params), 7)
        rows = conn.execute(
            "SELECT b, count(*), sum(num), sum(p - num >= ?6) FROM ("
            " SELECT b, num, lag(num) OVER (PARTITION BY b ORDER BY t, hid) AS p"
            f" FROM (SELECT {bucket} AS b, ts_ms AS t, hid, num FROM attr_history"
            f"  WHERE sid = {_SID}{where} AND num IS NOT NULL))"
            " GROUP BY b ORDER BY b",
            params,
        )
        for b, n, total, drops in rows:
            out.append(DropRow(entity_id, attr, int(b), n, float(total), int(drops or 0)))
    return out


def mark(conn: sqlite3.Connection) -> int:
    """The greatest hid: hid is the rowid, and SQLite gives a new row max(rowid) + 1 (one
    writer at a time), so rows committed later have greater hids — unless the newest rows
    were deleted first, when their hids can be given again."""
    row = conn.execute("SELECT max(hid) FROM attr_history").fetchone()
    return int(row[0] or 0)


def written_after(conn: sqlite3.Connection, query: WrittenQuery) -> set[int]:
    """Index-only per pair (the rowid is in every index): the window's entries are scanned,
    no row is read."""
    found: set[int] = set()
    for entity_id, attr in query.pairs:
        bucket, params = _reduction_params(query.tenant, entity_id, attr, query.buckets)
        params.append(query.mark)
        where = renumber(window_sql(query.window, params), 7)
        rows = conn.execute(
            f"SELECT DISTINCT {bucket} FROM attr_history"
            f" WHERE sid = {_SID}{where} AND hid > ?6",
            params,
        )
        found.update(int(r[0]) for r in rows)
    return found
