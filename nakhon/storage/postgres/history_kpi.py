"""Reductions for indicators on PostgreSQL (``history_base``: histogram, state durations,
drops, and the "written since" look-up of late data)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from nakhon.storage.history_base import (
    Buckets,
    DropQuery,
    DropRow,
    HistogramQuery,
    HistogramRow,
    StateQuery,
    StateRow,
    TimeWindow,
    WrittenQuery,
)

from .history_sql import TIME, Params, window_sql

# --- reductions for indicators (history_base: HistogramQuery, StateQuery, DropQuery) ---------
#
# One statement per request: the pairs are unnested and each is a LATERAL index range scan
# (as the instance reads), reduced per date_bin bucket inside PostgreSQL. The rows are sorted
# (window functions per pair and bucket, grouping) carrying the pair's ordinal ``k.n``, not its
# entity id and attribute IRI (~80 bytes of text a row): those are looked up in ``pairs`` for
# the few result rows. Sorted in memory with REDUCTION_WORK_MEM, local to the statement's
# transaction, instead of spilling to disk with the default 4 MB.

REDUCTION_WORK_MEM = "64MB"
"""work_mem of one reduction statement, local to its transaction. Sorted rows measured at ~120
bytes each (1,000 devices: 57,600 rows in 6.8 MB), so ~550,000 fit: at full width (5,000
devices) the incremental run's two days of 1,000 parking spots (576,000 rows) are at the edge;
a full recompute of many days still spills, far less than with the default 4 MB."""


async def _fetch(pool: asyncpg.Pool, sql: str, args: list[object]) -> list[asyncpg.Record]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL work_mem = '{REDUCTION_WORK_MEM}'")
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


def _pairs_lateral(
    tenant: str,
    pairs: Sequence[tuple[str, str]],
    window: TimeWindow,
    buckets: Buckets,
    p: Params,
    cols: str,
) -> tuple[str, str]:
    """FROM clause of the pairs joined to their rows (``x.b`` the bucket start, ``x.t`` the
    time, then ``cols``), and the placeholder of the bucket length.

    ``OFFSET 0`` keeps the row subquery from being flattened, so ``cols`` are computed from
    each row before the sorts above: otherwise the planner may compute expressions on
    ``h.instance`` after them and sort the whole instance along (state durations: 270
    bytes a row instead of ~100)."""
    if buckets.seconds <= 0:
        raise ValueError("indicator reductions need fixed-length buckets (seconds > 0)")
    t = TIME[window.prop]
    step = p.add(timedelta(seconds=buckets.seconds))
    origin = p.add(buckets.origin)
    eids = p.add([e for e, _ in pairs])
    attrs = p.add([a for _, a in pairs])
    tenant_p = p.add(tenant)
    where = window_sql(window, p)
    sql = (
        f" FROM unnest({eids}::text[], {attrs}::text[]) WITH ORDINALITY AS k(eid, attr, n)"
        f" JOIN history_series s"
        f"  ON s.tenant = {tenant_p} AND s.entity_id = k.eid AND s.attr = k.attr"
        f" CROSS JOIN LATERAL (SELECT date_bin({step}::interval, {t}, {origin}::timestamptz)"
        f"  AS b, {t} AS t, {cols} FROM attr_history h WHERE h.sid = s.sid{where} OFFSET 0) x"
    )
    return sql, step


def _index(buckets: Buckets, start: datetime) -> int:
    return round((start - buckets.origin).total_seconds() / buckets.seconds)


async def value_histogram(pool: asyncpg.Pool, query: HistogramQuery) -> list[HistogramRow]:
    if not query.pairs:
        return []
    p = Params()
    frm, _ = _pairs_lateral(query.tenant, query.pairs, query.window, query.buckets, p, "h.num")
    width = p.add(query.width)
    cond = "x.num IS NOT NULL"
    if query.min_value is not None:
        cond += f" AND x.num >= {p.add(query.min_value)}::float8"
    rows = await _fetch(
        pool,
        f"SELECT x.b, floor(x.num / {width}::float8)::bigint AS bin, count(*), sum(x.num)"
        f"{frm} WHERE {cond} GROUP BY 1, 2 ORDER BY 1, 2",
        p.values,
    )
    return [HistogramRow(_index(query.buckets, r[0]), r[1], r[2], float(r[3])) for r in rows]


async def state_durations(pool: asyncpg.Pool, query: StateQuery) -> list[StateRow]:
    if not query.pairs:
        return []
    p = Params()
    cols = ("h.hid, h.deleted, jsonb_typeof(h.instance -> 'value') AS jt,"
            " h.instance ->> 'value' AS v")
    frm, step = _pairs_lateral(query.tenant, query.pairs, query.window, query.buckets, p, cols)
    until = p.add(query.until)
    # Seconds as exact numeric differences of epochs, summed, then one float per row.
    rows = await _fetch(
        pool,
        "SELECT n, b, v, sum(extract(epoch from u) - extract(epoch from t)) FROM ("
        " SELECT k.n, x.b, x.t, x.deleted, x.jt, x.v,"
        "  coalesce(lead(x.t) OVER (PARTITION BY k.n, x.b ORDER BY x.t, x.hid),"
        f"   least(x.b + {step}::interval, {until}::timestamptz)) AS u"
        f" {frm}) y WHERE jt = 'string' AND NOT deleted AND u > t"
        " GROUP BY 1, 2, 3",
        p.values,
    )
    seconds: dict[tuple[str, str, int, str], float] = {}
    for r in rows:
        eid, attr = query.pairs[r[0] - 1]
        key = (eid, attr, _index(query.buckets, r[1]), r[2])
        seconds[key] = seconds.get(key, 0.0) + float(r[3])
    return [StateRow(*key, s) for key, s in sorted(seconds.items())]


async def value_drops(pool: asyncpg.Pool, query: DropQuery) -> list[DropRow]:
    if not query.pairs:
        return []
    p = Params()
    cols = "h.hid, h.num"
    frm, _ = _pairs_lateral(query.tenant, query.pairs, query.window, query.buckets, p, cols)
    drop = p.add(query.drop)
    rows = await _fetch(
        pool,
        "SELECT n, b, count(*), sum(num), count(*) FILTER (WHERE prev - num >= "
        f"{drop}::float8) FROM ("
        " SELECT k.n, x.b, x.num,"
        "  lag(x.num) OVER (PARTITION BY k.n, x.b ORDER BY x.t, x.hid) AS prev"
        f" {frm} WHERE x.num IS NOT NULL) y GROUP BY 1, 2",
        p.values,
    )
    out: dict[tuple[str, str, int], list[float]] = {}
    for r in rows:
        eid, attr = query.pairs[r[0] - 1]
        acc = out.setdefault((eid, attr, _index(query.buckets, r[1])), [0, 0.0, 0])
        acc[0] += r[2]
        acc[1] += float(r[3])
        acc[2] += r[4]
    return [DropRow(*key, int(c), s, int(d)) for key, (c, s, d) in sorted(out.items())]


async def mark(pool: asyncpg.Pool) -> int:
    """The last hid drawn, once no insert is in flight: every row written later has a greater
    hid.

    hid comes from a sequence, so a transaction still running could commit a smaller hid
    after the mark is read. SHARE mode conflicts with the ROW EXCLUSIVE lock every
    INSERT/COPY holds until it ends (taken before its hid is drawn): waiting for it means every
    hid drawn so far is committed or rolled back, and later ones are greater. The sequence
    itself is read, not ``max(hid)``: the hid index is a BRIN index (migration 0009), which
    has no cheap maximum. Writers wait only for that one-row read."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE attr_history IN SHARE MODE")
        row = await conn.fetchrow("SELECT last_value, is_called FROM attr_history_hid_seq")
    return int(row["last_value"]) if row["is_called"] else int(row["last_value"]) - 1


async def written_after(pool: asyncpg.Pool, query: WrittenQuery) -> set[int]:
    """The buckets of the pairs' rows written after the mark: a range scan of the hid index
    (BRIN) reads only those rows (few, between two periodic runs; a day's after a backfill),
    grouped by series and bucket in the server; the series are matched in Python against the
    pairs' sids, found by their key. The pairs are matched as entity × attribute sets: a
    superset, which can only rebuild a day more, never miss one.

    Two statements and no join on purpose: joined in SQL, the planner's estimate of the series
    side (one row for thousands of ids) made it loop over the series and scan the new rows
    once per series, or the reverse — minutes at 90 days × 5,000 devices, where the scan
    alone takes under a second."""
    if not query.pairs:
        return set()
    wanted = {
        r[0]
        for r in await pool.fetch(
            "SELECT sid FROM history_series WHERE tenant = $1"
            " AND entity_id = ANY($2::text[]) AND attr = ANY($3::text[])",
            query.tenant,
            sorted({e for e, _ in query.pairs}),
            sorted({a for _, a in query.pairs}),
        )
    }
    if not wanted:
        return set()
    p = Params()
    step = p.add(timedelta(seconds=query.buckets.seconds))
    origin = p.add(query.buckets.origin)
    sql = (
        f"SELECT DISTINCT w.sid, date_bin({step}::interval, w.t, {origin}::timestamptz)"
        f" FROM (SELECT h.sid, {TIME[query.window.prop]} AS t FROM attr_history h"
        f"  WHERE h.hid > {p.add(query.mark)}{window_sql(query.window, p)}) w"
    )
    rows = await pool.fetch(sql, *p.values)
    return {_index(query.buckets, r[1]) for r in rows if r[0] in wanted}
