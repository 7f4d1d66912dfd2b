"""Temporal history on PostgreSQL: the read side and temporal provision (``history_base``).

Migration 0003 adds ``hid`` (identity), ``ts`` (observedAt, else modification time) and ``num``
(the value when a JSON number) as generated columns, plus a covering index on
``(tenant, entity_id, attr, ts) INCLUDE (num, dataset_id)``: instance reads are index range
scans with a LIMIT per pair (``LATERAL``), and aggregation is an index-only scan grouped by
``date_bin`` — all in one statement per request.
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
    Buckets,
    DeletedEntity,
    DeletedQuery,
    DropQuery,
    DropRow,
    HistogramQuery,
    HistogramRow,
    InstanceQuery,
    Selector,
    StateQuery,
    StateRow,
    StoredInstance,
    TimeWindow,
    WrittenQuery,
)

from .codec import parse_time

_TIME = {
    "observedAt": "h.ts",
    "modifiedAt": "h.modified_at",
    "createdAt": "(h.instance ->> 'createdAt')::timestamptz",
    "deletedAt": "h.ts",  # a marker is written at its deletedAt (and _window adds "deleted")
}

_ANY_VALUE = (
    "coalesce(h.instance -> 'value', h.instance -> 'object', h.instance -> 'languageMap',"
    " h.instance -> 'vocab', h.instance -> 'valueList', h.instance -> 'objectList',"
    " h.instance -> 'json')"
)


class _Params:
    """Collects positional parameters and hands out their ``$n`` placeholders."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _window(window: TimeWindow, p: _Params) -> str:
    t = _TIME[window.prop]
    sql = f" AND {t} IS NOT NULL"
    if window.prop == "deletedAt":
        sql += " AND h.deleted"
    if window.start is not None:
        sql += f" AND {t} >= {p.add(window.start)}"
    if window.end is not None:
        sql += f" AND {t} < {p.add(window.end)}"
    return sql


async def instances(pool: asyncpg.Pool, query: InstanceQuery) -> list[StoredInstance]:
    """Per pair, at most ``limit`` instances in the window: one statement, a LATERAL index
    range scan with LIMIT per pair."""
    if not query.pairs:
        return []
    t = _TIME[query.window.prop]
    order = "DESC" if query.newest_first else "ASC"
    p = _Params()
    tenant = p.add(query.tenant)
    eids = p.add([e for e, _ in query.pairs])
    attrs = p.add([a for _, a in query.pairs])
    where = _window(query.window, p)
    limit = p.add(query.limit)
    sql = (
        f"SELECT k.eid, k.attr, x.hid, x.t, x.instance"
        f" FROM unnest({eids}::text[], {attrs}::text[]) WITH ORDINALITY AS k(eid, attr, n)"
        f" CROSS JOIN LATERAL (SELECT h.hid, {t} AS t, h.instance FROM attr_history h"
        f"  WHERE h.tenant = {tenant} AND h.entity_id = k.eid AND h.attr = k.attr{where}"
        f"  ORDER BY {t} {order}, h.hid {order} LIMIT {limit}) x"
        f" ORDER BY k.n"
    )
    rows = await pool.fetch(sql, *p.values)
    return [StoredInstance(r["hid"], r["eid"], r["attr"], r["t"], r["instance"]) for r in rows]


def _bucket_sql(query: AggregateQuery, t: str, p: _Params) -> str:
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


async def aggregate(pool: asyncpg.Pool, query: AggregateQuery) -> list[AggregateRow]:
    """One GROUP BY over the covering index for every pair (index-only scan)."""
    if not query.pairs:
        return []
    t = _TIME[query.window.prop]
    m = query.methods
    p = _Params()
    bucket = _bucket_sql(query, t, p)
    tenant = p.add(query.tenant)
    eid_set = sorted({e for e, _ in query.pairs})
    attr_set = sorted({a for _, a in query.pairs})
    # One entity and attribute (the common case) as plain equalities: the planner's estimate
    # is then exact and it picks the index-only scan without hesitation.
    e_cond = _in(eid_set, p)
    a_cond = _in(attr_set, p)
    where = _window(query.window, p)
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
    sql = (
        f"SELECT h.entity_id, h.attr, h.dataset_id, {bucket} AS b, {', '.join(cols)}"
        f" FROM attr_history h"
        f" WHERE h.tenant = {tenant} AND h.entity_id {e_cond} AND h.attr {a_cond}{where}"
        " AND NOT h.deleted GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    )
    rows = await pool.fetch(sql, *p.values)
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


def _in(values: list[str], p: _Params) -> str:
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


# --- reductions for indicators (history_base: HistogramQuery, StateQuery, DropQuery) ---------
#
# One statement per request: the pairs are unnested and each is a LATERAL index range scan
# (as the instance reads), reduced per date_bin bucket inside PostgreSQL.


def _pairs_lateral(
    tenant: str,
    pairs: Sequence[tuple[str, str]],
    window: TimeWindow,
    buckets: Buckets,
    p: _Params,
    cols: str,
) -> tuple[str, str]:
    """FROM clause of the pairs joined to their rows (``x.b`` the bucket start, ``x.t`` the
    time, then ``cols``), and the placeholder of the bucket length."""
    if buckets.seconds <= 0:
        raise ValueError("indicator reductions need fixed-length buckets (seconds > 0)")
    t = _TIME[window.prop]
    step = p.add(timedelta(seconds=buckets.seconds))
    origin = p.add(buckets.origin)
    eids = p.add([e for e, _ in pairs])
    attrs = p.add([a for _, a in pairs])
    tenant_p = p.add(tenant)
    where = _window(window, p)
    sql = (
        f" FROM unnest({eids}::text[], {attrs}::text[]) WITH ORDINALITY AS k(eid, attr, n)"
        f" CROSS JOIN LATERAL (SELECT date_bin({step}::interval, {t}, {origin}::timestamptz)"
        f"  AS b, {t} AS t, {cols} FROM attr_history h"
        f"  WHERE h.tenant = {tenant_p} AND h.entity_id = k.eid AND h.attr = k.attr{where}) x"
    )
    return sql, step


def _index(buckets: Buckets, start: datetime) -> int:
    return round((start - buckets.origin).total_seconds() / buckets.seconds)


async def value_histogram(pool: asyncpg.Pool, query: HistogramQuery) -> list[HistogramRow]:
    if not query.pairs:
        return []
    p = _Params()
    frm, _ = _pairs_lateral(query.tenant, query.pairs, query.window, query.buckets, p, "h.num")
    width = p.add(query.width)
    cond = "x.num IS NOT NULL"
    if query.min_value is not None:
        cond += f" AND x.num >= {p.add(query.min_value)}::float8"
    rows = await pool.fetch(
        f"SELECT x.b, floor(x.num / {width}::float8)::bigint AS bin, count(*), sum(x.num)"
        f"{frm} WHERE {cond} GROUP BY 1, 2 ORDER BY 1, 2",
        *p.values,
    )
    return [HistogramRow(_index(query.buckets, r[0]), r[1], r[2], float(r[3])) for r in rows]


async def state_durations(pool: asyncpg.Pool, query: StateQuery) -> list[StateRow]:
    if not query.pairs:
        return []
    p = _Params()
    cols = ("h.hid, h.deleted, jsonb_typeof(h.instance -> 'value') AS jt,"
            " h.instance ->> 'value' AS v")
    frm, step = _pairs_lateral(query.tenant, query.pairs, query.window, query.buckets, p, cols)
    until = p.add(query.until)
    # Seconds as exact numeric differences of epochs, summed, then one float per row.
    rows = await pool.fetch(
        "SELECT eid, attr, b, v, sum(extract(epoch from u) - extract(epoch from t)) FROM ("
        " SELECT k.eid, k.attr, x.b, x.t, x.deleted, x.jt, x.v,"
        "  coalesce(lead(x.t) OVER (PARTITION BY k.n, x.b ORDER BY x.t, x.hid),"
        f"   least(x.b + {step}::interval, {until}::timestamptz)) AS u"
        f" {frm}) y WHERE jt = 'string' AND NOT deleted AND u > t"
        " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        *p.values,
    )
    return [
        StateRow(r[0], r[1], _index(query.buckets, r[2]), r[3], float(r[4])) for r in rows
    ]


async def value_drops(pool: asyncpg.Pool, query: DropQuery) -> list[DropRow]:
    if not query.pairs:
        return []
    p = _Params()
    cols = "h.hid, h.num"
    frm, _ = _pairs_lateral(query.tenant, query.pairs, query.window, query.buckets, p, cols)
    drop = p.add(query.drop)
    rows = await pool.fetch(
        "SELECT eid, attr, b, count(*), sum(num), count(*) FILTER (WHERE prev - num >= "
        f"{drop}::float8) FROM ("
        " SELECT k.eid, k.attr, x.b, x.num,"
        "  lag(x.num) OVER (PARTITION BY k.n, x.b ORDER BY x.t, x.hid) AS prev"
        f" {frm} WHERE x.num IS NOT NULL) y GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        *p.values,
    )
    return [
        DropRow(r[0], r[1], _index(query.buckets, r[2]), r[3], float(r[4]), r[5]) for r in rows
    ]



async def mark(pool: asyncpg.Pool) -> int:
    """The greatest committed hid once no insert is in flight.

    hid comes from a sequence, so a transaction still running could commit a smaller hid
    after a plain ``max(hid)`` is read. SHARE mode conflicts with the ROW EXCLUSIVE lock every
    INSERT/COPY holds until it ends (taken before its hid is drawn): waiting for it means every
    hid drawn so far is committed or rolled back, and later ones are greater. Writers wait
    only for the index lookup of max(hid)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE attr_history IN SHARE MODE")
        value = await conn.fetchval("SELECT coalesce(max(hid), 0) FROM attr_history")
    return int(value)


async def written_after(pool: asyncpg.Pool, query: WrittenQuery) -> set[int]:
    """A range scan of the hid index: only rows written after the mark are read (few, between
    two periodic runs), where a scan of the window per pair would fetch every row of the late
    days from the heap (hid is not in the covering index). The pairs are matched as entity ×
    attribute sets: a superset, which can only rebuild a day more, never miss one."""
    if not query.pairs:
        return set()
    p = _Params()
    step = p.add(timedelta(seconds=query.buckets.seconds))
    origin = p.add(query.buckets.origin)
    sql = (
        f"SELECT DISTINCT date_bin({step}::interval, {_TIME[query.window.prop]},"
        f" {origin}::timestamptz) FROM attr_history h WHERE h.hid > {p.add(query.mark)}"
        f" AND h.tenant = {p.add(query.tenant)}"
        f" AND h.entity_id = ANY({p.add(sorted({e for e, _ in query.pairs}))}::text[])"
        f" AND h.attr = ANY({p.add(sorted({a for _, a in query.pairs}))}::text[])"
        f"{_window(query.window, p)}"
    )
    rows = await pool.fetch(sql, *p.values)
    return {_index(query.buckets, r[0]) for r in rows}


async def entities_with_history(
    pool: asyncpg.Pool, tenant: str, entity_ids: Sequence[str]
) -> set[str]:
    rows = await pool.fetch(
        "SELECT k.eid FROM unnest($2::text[]) AS k(eid) WHERE EXISTS"
        " (SELECT 1 FROM attr_history h WHERE h.tenant = $1 AND h.entity_id = k.eid)",
        tenant,
        list(entity_ids),
    )
    return {r[0] for r in rows}


async def attrs_of(
    pool: asyncpg.Pool, tenant: str, entity_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Distinct attributes per entity: a recursive skip through the index (one probe per
    attribute, however long its history)."""
    rows = await pool.fetch(
        "WITH RECURSIVE s(eid, attr) AS ("
        " SELECT k.eid, (SELECT min(h.attr) FROM attr_history h"
        "  WHERE h.tenant = $1 AND h.entity_id = k.eid) FROM unnest($2::text[]) AS k(eid)"
        " UNION ALL"
        " SELECT s.eid, (SELECT min(h.attr) FROM attr_history h"
        "  WHERE h.tenant = $1 AND h.entity_id = s.eid AND h.attr > s.attr)"
        " FROM s WHERE s.attr IS NOT NULL)"
        f" SELECT eid, attr FROM s WHERE attr IS NOT NULL AND attr <> '{ENTITY_MARKER}'"
        " ORDER BY eid, attr",
        tenant,
        list(entity_ids),
    )
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(r[1])
    return out


async def deleted_entities(pool: asyncpg.Pool, query: DeletedQuery) -> list[DeletedEntity]:
    """The newest entity marker of each entity that does not exist now (partial index on the
    markers); with a window, only entities with an instance in it. One statement."""
    p = _Params()
    sql = (
        "SELECT DISTINCT ON (h.entity_id) h.entity_id, h.instance FROM attr_history h"
        f" WHERE h.tenant = {p.add(query.tenant)} AND h.attr = '{ENTITY_MARKER}'"
    )
    if query.ids is not None:
        sql += f" AND h.entity_id = ANY({p.add(list(query.ids))}::text[])"
    if query.types is not None:
        sql += f" AND jsonb_exists_any(h.instance -> 'types', {p.add(list(query.types))}::text[])"
    sql += (
        " AND NOT EXISTS (SELECT 1 FROM entities e WHERE e.tenant = h.tenant"
        " AND e.id = h.entity_id)"
    )
    if query.window is not None:
        # Same columns under another alias: _window speaks of "h".
        inner = _window(query.window, p).replace("h.", "w.")
        attrs = f" AND w.attr = ANY({p.add(list(query.attrs))}::text[])" if query.attrs else ""
        sql += (
            " AND EXISTS (SELECT 1 FROM attr_history w WHERE w.tenant = h.tenant"
            f" AND w.entity_id = h.entity_id{attrs}{inner})"
        )
    sql += " ORDER BY h.entity_id, h.ts DESC, h.hid DESC"
    rows = await pool.fetch(sql, *p.values)
    out: list[DeletedEntity] = []
    for r in rows:
        doc: dict[str, Any] = r[1]
        scope = doc.get("scope")
        out.append(
            DeletedEntity(
                r[0],
                list(doc.get("types") or []),
                list(scope) if scope is not None else None,
                str(doc.get("createdAt") or doc.get("deletedAt")),
                str(doc.get("deletedAt")),
            )
        )
    return out


async def get_instance(
    pool: asyncpg.Pool, tenant: str, entity_id: str, attr: str, hid: int
) -> StoredInstance | None:
    row = await pool.fetchrow(
        "SELECT ts, instance FROM attr_history"
        " WHERE hid = $1 AND tenant = $2 AND entity_id = $3 AND attr = $4",
        hid,
        tenant,
        entity_id,
        attr,
    )
    if row is None:
        return None
    return StoredInstance(hid, entity_id, attr, row[0], row[1])


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
    p = _Params()
    sql = (
        f"DELETE FROM attr_history WHERE tenant = {p.add(tenant)}"
        f" AND entity_id = {p.add(entity_id)}"
    )
    if attr is not None:
        sql += f" AND attr = {p.add(attr)}"
        if not all_datasets:
            sql += f" AND dataset_id IS NOT DISTINCT FROM {p.add(dataset_id)}::text"
    return _count(await pool.execute(sql, *p.values))


async def replace_instance(
    pool: asyncpg.Pool, tenant: str, entity_id: str, attr: str, hid: int, inst: Instance
) -> bool:
    status = await pool.execute(
        "UPDATE attr_history SET instance = $1, observed_at = $2, dataset_id = $3"
        " WHERE hid = $4 AND tenant = $5 AND entity_id = $6 AND attr = $7",
        inst,
        parse_time(inst.get("observedAt")),
        inst.get("datasetId"),
        hid,
        tenant,
        entity_id,
        attr,
    )
    return _count(status) > 0


async def delete_instance(
    pool: asyncpg.Pool, tenant: str, entity_id: str, attr: str, hid: int
) -> bool:
    status = await pool.execute(
        "DELETE FROM attr_history WHERE hid = $1 AND tenant = $2 AND entity_id = $3"
        " AND attr = $4",
        hid,
        tenant,
        entity_id,
        attr,
    )
    return _count(status) > 0


def _iri_match(column: str, name: str, p: _Params) -> str:
    """The column is the IRI ``name`` or ends with ``/name`` or ``#name`` (a short term)."""
    full, slash, hash_ = p.add(name), p.add("/" + name), p.add("#" + name)
    return (
        f"({column} = {full} OR right({column}, length({slash})) = {slash}"
        f" OR right({column}, length({hash_})) = {hash_})"
    )


def _selector_sql(sel: Selector, p: _Params) -> str:
    parts: list[str] = []
    if sel.tenant is not None:
        parts.append(f"h.tenant = {p.add(sel.tenant)}")
    if sel.attr is not None:
        parts.append(_iri_match("h.attr", sel.attr, p))
    if sel.entity_type is not None:
        # The current types; for an entity that no longer exists, those its markers keep.
        match = _iri_match("ty.t", sel.entity_type, p)
        kept = _iri_match("j.t", sel.entity_type, p)
        parts.append(
            "(EXISTS (SELECT 1 FROM entities e, unnest(e.types) AS ty(t)"
            f" WHERE e.tenant = h.tenant AND e.id = h.entity_id AND {match})"
            " OR (NOT EXISTS (SELECT 1 FROM entities e WHERE e.tenant = h.tenant"
            "  AND e.id = h.entity_id)"
            "  AND EXISTS (SELECT 1 FROM attr_history m,"
            "   jsonb_array_elements_text(m.instance -> 'types') AS j(t)"
            "   WHERE m.tenant = h.tenant AND m.entity_id = h.entity_id"
            f"   AND m.attr = '{ENTITY_MARKER}' AND {kept})))"
        )
    return " AND ".join(parts) if parts else "true"


async def prune(
    pool: asyncpg.Pool, selector: Selector, before: datetime, shadowed: Sequence[Selector]
) -> int:
    """Instances first; then entity markers whose entity has nothing else left (a marker is
    what keeps a deleted entity reachable, and what type rules match its history by)."""
    p = _Params()
    where = _selector_sql(selector, p) + f" AND h.ts < {p.add(before.astimezone(UTC))}"
    for other in shadowed:
        where += f" AND NOT ({_selector_sql(other, p)})"
    gone = _count(
        await pool.execute(
            f"DELETE FROM attr_history h WHERE {where} AND h.attr <> '{ENTITY_MARKER}'",
            *p.values,
        )
    )
    return gone + _count(
        await pool.execute(
            f"DELETE FROM attr_history h WHERE {where} AND h.attr = '{ENTITY_MARKER}'"
            " AND NOT EXISTS (SELECT 1 FROM attr_history o WHERE o.tenant = h.tenant"
            f" AND o.entity_id = h.entity_id AND o.attr <> '{ENTITY_MARKER}')",
            *p.values,
        )
    )
