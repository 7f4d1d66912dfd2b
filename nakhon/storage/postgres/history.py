"""Temporal history on PostgreSQL: the read side and temporal provision (``history_base``).

Each row has ``hid`` (identity), its series ``sid`` (``history_series``: tenant, entity,
attribute; migration 0006), and the columns the writer derives from the instance (migration
0009) ``ts`` (observedAt, else modification time), ``num`` (the value when a JSON number) and
``deleted``, with a BRIN index on ``hid`` and a covering index on
``(sid, ts) INCLUDE (num, dataset_id, deleted)``: instance reads are index range scans with a
LIMIT per pair (``LATERAL``), and aggregation is an index-only scan grouped by ``date_bin`` —
all in one statement per request, the series looked up through their unique key. Indicator
reductions are in ``history_kpi``, deleted entities in ``history_deleted``, shared SQL pieces
in ``history_sql``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from nakhon.broker.model import Instance
from nakhon.storage.history_base import (
    ENTITY_MARKER,
    AggregateQuery,
    AggregateRow,
    InstanceQuery,
    Selector,
    StoredInstance,
)
from nakhon.storage.rows import numeric

from .codec import parse_time
from .history_deleted import attrs_of, deleted_entities
from .history_kpi import mark, state_durations, value_drops, value_histogram, written_after
from .history_sql import TIME, Params, window_sql

__all__ = [
    "aggregate",
    "attrs_of",
    "delete_history",
    "delete_instance",
    "deleted_entities",
    "entities_with_history",
    "get_instance",
    "instances",
    "mark",
    "prune",
    "replace_instance",
    "state_durations",
    "value_drops",
    "value_histogram",
    "written_after",
]

_ANY_VALUE = (
    "coalesce(h.instance -> 'value', h.instance -> 'object', h.instance -> 'languageMap',"
    " h.instance -> 'vocab', h.instance -> 'valueList', h.instance -> 'objectList',"
    " h.instance -> 'json')"
)


async def instances(pool: asyncpg.Pool, query: InstanceQuery) -> list[StoredInstance]:
    """Per pair, at most ``limit`` instances in the window: one statement, a LATERAL index
    range scan with LIMIT per pair."""
    if not query.pairs:
        return []
    t = TIME[query.window.prop]
    order = "DESC" if query.newest_first else "ASC"
    p = Params()
    tenant = p.add(query.tenant)
    eids = p.add([e for e, _ in query.pairs])
    attrs = p.add([a for _, a in query.pairs])
    where = window_sql(query.window, p)
    limit = p.add(query.limit)
    sql = (
        f"SELECT k.eid, k.attr, x.hid, x.t, x.instance"
        f" FROM unnest({eids}::text[], {attrs}::text[]) WITH ORDINALITY AS k(eid, attr, n)"
        f" JOIN history_series s"
        f"  ON s.tenant = {tenant} AND s.entity_id = k.eid AND s.attr = k.attr"
        f" CROSS JOIN LATERAL (SELECT h.hid, {t} AS t, h.instance FROM attr_history h"
        f"  WHERE h.sid = s.sid{where}"
        f"  ORDER BY {t} {order}, h.hid {order} LIMIT {limit}) x"
        # The pair's own order again: a sort by k.n alone is not stable, and with the join
        # to history_series the planner may well sort (seen: a series returned newest first).
        f" ORDER BY k.n, x.t {order}, x.hid {order}"
    )
    rows = await pool.fetch(sql, *p.values)
    return [StoredInstance(r["hid"], r["eid"], r["attr"], r["t"], r["instance"]) for r in rows]


def _bucket_sql(query: AggregateQuery, t: str, p: Params) -> str:
    b = query.buckets
    if b.seconds:
        step = p.add(timedelta(seconds=b.seconds))
        origin = p.add(b.origin)
        return f"date_bin({step}::interval, {t}, {origin}::timestamptz)"
    if b.months:
        origin_m = p.add(b.origin.year * 12 + b.origin.month - 1)
        months = p.add(b.months)
        m = (
            f"((extract(year from {t} AT TIME ZONE 'UTC')::int * 12"
            f" + extract(month from {t} AT TIME ZONE 'UTC')::int - 1) - {origin_m}::int)"
        )
        return f"floor({m}::float8 / {months}::int)::bigint"
    return "0"


AGGREGATE_WORK_MEM = "32MB"
"""Sort memory of one aggregation query (``SET LOCAL``: this query only, not the session)."""


async def aggregate(pool: asyncpg.Pool, query: AggregateQuery) -> list[AggregateRow]:
    """One GROUP BY over the covering index for every pair (index-only scan)."""
    if not query.pairs:
        return []
    t = TIME[query.window.prop]
    m = query.methods
    p = Params()
    bucket = _bucket_sql(query, t, p)
    tenant = p.add(query.tenant)
    eid_set = sorted({e for e, _ in query.pairs})
    attr_set = sorted({a for _, a in query.pairs})
    # One entity and attribute (the common case) as plain equalities: the planner's estimate
    # is then exact and it picks the index-only scan without hesitation.
    e_cond = _in(eid_set, p)
    a_cond = _in(attr_set, p)
    where = window_sql(query.window, p)
    # Only what was asked: every aggregate costs a step per row. The first/last times are
    # needed only to label a whole-window bucket.
    whole = query.buckets.whole
    cols = [
        f"min({t}) AS first" if whole else "NULL",
        f"max({t}) AS last" if whole else "NULL",
        "count(*) AS total" if "totalCount" in m else "NULL",
        f"count(DISTINCT {_ANY_VALUE}) AS distinct_n" if "distinctCount" in m else "NULL",
        "sum(h.num) AS s" if "sum" in m else "NULL",
        "avg(h.num) AS avg" if "avg" in m else "NULL",
        "min(h.num) AS lo" if "min" in m else "NULL",
        "max(h.num) AS hi" if "max" in m else "NULL",
        "stddev_samp(h.num) AS sd" if "stddev" in m else "NULL",
        "sum(h.num * h.num) AS sq" if "sumsq" in m else "NULL",
    ]
    series = f"s.tenant = {tenant} AND s.entity_id {e_cond} AND s.attr {a_cond}"
    if len(eid_set) == 1 and len(attr_set) == 1:
        # One series (the common case): its sid is looked up once (an InitPlan) and the index
        # is read on it; entity and attribute are constants, so the sort that feeds the
        # grouping carries only the dataset and the bucket.
        keys, group = f"{e_cond[2:]}::text, {a_cond[2:]}::text", "GROUP BY 3, 4 ORDER BY 3, 4"
        frm = f"attr_history h WHERE h.sid = (SELECT s.sid FROM history_series s WHERE {series})"
    else:
        keys, group = "s.entity_id, s.attr", "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        frm = f"history_series s JOIN attr_history h ON h.sid = s.sid WHERE {series}"
    sql = (
        f"SELECT {keys}, h.dataset_id, {bucket} AS b, {', '.join(cols)}"
        f" FROM {frm}{where} AND NOT h.deleted {group}"
    )
    async with pool.acquire() as conn, conn.transaction():
        # A year of 5-minute data is ~100,000 rows to sort into buckets: with the default 4 MB
        # the sort spills to disk; in memory it is about twice as fast. Local to this query.
        await conn.execute(f"SET LOCAL work_mem = '{AGGREGATE_WORK_MEM}'")
        rows = await conn.fetch(sql, *p.values)
    wanted = set(query.pairs)
    out: list[AggregateRow] = []
    for r in rows:
        if (r[0], r[1]) not in wanted:
            continue
        values: dict[str, float | int | None] = {
            "totalCount": r[6],
            "distinctCount": r[7],
            "sum": r[8],
            "avg": _float(r[9]),
            "min": r[10],
            "max": r[11],
            "stddev": r[12],
            "sumsq": r[13],
        }
        out.append(
            AggregateRow(
                r[0],
                r[1],
                r[2],
                _bucket_index(query, r[3]),
                r[4],
                r[5],
                {k: values[k] for k in m},
            )
        )
    return out


def _in(values: list[str], p: Params) -> str:
    if len(values) == 1:
        return f"= {p.add(values[0])}"
    return f"= ANY({p.add(values)}::text[])"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _bucket_index(query: AggregateQuery, raw: Any) -> int:
    b = query.buckets
    if b.seconds:
        start: datetime = raw
        return round((start - b.origin).total_seconds() / b.seconds)
    return int(raw)


async def entities_with_history(
    pool: asyncpg.Pool, tenant: str, entity_ids: Sequence[str]
) -> set[str]:
    rows = await pool.fetch(
        # A series outlives its rows (retention, history deletion): look for a row.
        "SELECT k.eid FROM unnest($2::text[]) AS k(eid) WHERE EXISTS"
        " (SELECT 1 FROM history_series s WHERE s.tenant = $1 AND s.entity_id = k.eid"
        "  AND EXISTS (SELECT 1 FROM attr_history h WHERE h.sid = s.sid))",
        tenant,
        list(entity_ids),
    )
    return {r[0] for r in rows}


async def get_instance(
    pool: asyncpg.Pool, tenant: str, entity_id: str, attr: str, hid: int
) -> StoredInstance | None:
    row = await pool.fetchrow(
        f"SELECT ts, instance FROM attr_history WHERE hid = $1 AND sid = {_SID}",
        hid,
        tenant,
        entity_id,
        attr,
    )
    if row is None:
        return None
    return StoredInstance(hid, entity_id, attr, row[0], row[1])


_SID = "(SELECT sid FROM history_series WHERE tenant = $2 AND entity_id = $3 AND attr = $4)"
"""The series of ($2, $3, $4): tenant, entity, attribute."""


def _count(status: str) -> int:
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


async def delete_history(
    pool: asyncpg.Pool,
    tenant: str,
    entity_id: str,
    attr: str | None,
    dataset_id: str | None,
    all_datasets: bool,
) -> int:
    p = Params()
    series = f"tenant = {p.add(tenant)} AND entity_id = {p.add(entity_id)}"
    if attr is not None:
        series += f" AND attr = {p.add(attr)}"
    sql = f"DELETE FROM attr_history WHERE sid IN (SELECT sid FROM history_series WHERE {series})"
    if attr is not None and not all_datasets:
        sql += f" AND dataset_id IS NOT DISTINCT FROM {p.add(dataset_id)}::text"
    return _count(await pool.execute(sql, *p.values))


async def replace_instance(
    pool: asyncpg.Pool, tenant: str, entity_id: str, attr: str, hid: int, inst: Instance
) -> bool:
    status = await pool.execute(
        "UPDATE attr_history SET instance = $5, observed_at = $6, dataset_id = $7,"
        " ts = coalesce($6, modified_at), num = $8, deleted = $9"
        f" WHERE hid = $1 AND sid = {_SID}",
        hid,
        tenant,
        entity_id,
        attr,
        inst,
        parse_time(inst.get("observedAt")),
        inst.get("datasetId"),
        numeric(inst),
        "deletedAt" in inst,
    )
    return _count(status) > 0


async def delete_instance(
    pool: asyncpg.Pool, tenant: str, entity_id: str, attr: str, hid: int
) -> bool:
    status = await pool.execute(
        f"DELETE FROM attr_history WHERE hid = $1 AND sid = {_SID}",
        hid,
        tenant,
        entity_id,
        attr,
    )
    return _count(status) > 0


def _iri_match(column: str, name: str, p: Params) -> str:
    """The column is the IRI ``name`` or ends with ``/name`` or ``#name`` (a short term)."""
    full, slash, hash_ = p.add(name), p.add("/" + name), p.add("#" + name)
    return (
        f"({column} = {full} OR right({column}, length({slash})) = {slash}"
        f" OR right({column}, length({hash_})) = {hash_})"
    )


def _selector_sql(sel: Selector, p: Params) -> str:
    """Conditions on the series (alias ``s``) a retention rule selects."""
    parts: list[str] = []
    if sel.tenant is not None:
        parts.append(f"s.tenant = {p.add(sel.tenant)}")
    if sel.attr is not None:
        parts.append(_iri_match("s.attr", sel.attr, p))
    if sel.entity_type is not None:
        # The current types; for an entity that no longer exists, those its markers keep.
        match = _iri_match("ty.t", sel.entity_type, p)
        kept = _iri_match("j.t", sel.entity_type, p)
        parts.append(
            "(EXISTS (SELECT 1 FROM entities e, unnest(e.types) AS ty(t)"
            f" WHERE e.tenant = s.tenant AND e.id = s.entity_id AND {match})"
            " OR (NOT EXISTS (SELECT 1 FROM entities e WHERE e.tenant = s.tenant"
            "  AND e.id = s.entity_id)"
            "  AND EXISTS (SELECT 1 FROM history_series ms JOIN attr_history m ON m.sid = ms.sid,"
            "   jsonb_array_elements_text(m.instance -> 'types') AS j(t)"
            "   WHERE ms.tenant = s.tenant AND ms.entity_id = s.entity_id"
            f"   AND ms.attr = '{ENTITY_MARKER}' AND {kept})))"
        )
    return " AND ".join(parts) if parts else "true"


async def prune(
    pool: asyncpg.Pool, selector: Selector, before: datetime, shadowed: Sequence[Selector]
) -> int:
    """Instances first; then entity markers whose entity has nothing else left (a marker is
    what keeps a deleted entity reachable, and what type rules match its history by). The
    series rows stay (an empty series is one small row; the writers cache its id)."""
    p = Params()
    where = _selector_sql(selector, p) + f" AND h.ts < {p.add(before.astimezone(UTC))}"
    for other in shadowed:
        where += f" AND NOT ({_selector_sql(other, p)})"
    delete = "DELETE FROM attr_history h USING history_series s WHERE h.sid = s.sid AND "
    gone = _count(
        await pool.execute(f"{delete}{where} AND s.attr <> '{ENTITY_MARKER}'", *p.values)
    )
    return gone + _count(
        await pool.execute(
            f"{delete}{where} AND s.attr = '{ENTITY_MARKER}'"
            " AND NOT EXISTS (SELECT 1 FROM history_series os JOIN attr_history o"
            " ON o.sid = os.sid WHERE os.tenant = s.tenant AND os.entity_id = s.entity_id"
            f" AND os.attr <> '{ENTITY_MARKER}')",
            *p.values,
        )
    )
