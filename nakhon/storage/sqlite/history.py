"""Temporal history on SQLite: the read side and temporal provision (``storage.history_base``).

Reads run on the engine's reader connections (indicator reductions in ``history_kpi``, deleted
entities in ``history_deleted``, shared SQL pieces in ``history_sql``). Times are integer epoch
milliseconds inside SQL (``ts_ms``, written by the writer since migration 6, see ``series``;
before, a generated column): the same instant written with any offset gives the same key, and
bounds compared against it are exact. Rows are keyed by series (``history_series``): one
series is ``sid = (SELECT sid …)``, anything wider reads the ``history_keyed`` view.
Provision writes use a short connection of their own, like the kv writes: they are rare, and
SQLite's lock serialises them with the entity writer."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson

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

from .history_deleted import attrs_of, deleted_entities
from .history_kpi import mark, state_durations, value_drops, value_histogram, written_after
from .history_sql import TIME, from_ms, ms_of, renumber, to_ms, window_sql
from .series import SID, instant_ms, short_text, sid_sql

__all__ = [
    "aggregate",
    "attrs_of",
    "delete_history",
    "delete_instance",
    "deleted_entities",
    "entities_with_history",
    "from_ms",
    "get_instance",
    "instances",
    "mark",
    "prune",
    "replace_instance",
    "state_durations",
    "to_ms",
    "value_drops",
    "value_histogram",
    "write",
    "written_after",
]

T = TypeVar("T")

# distinctCount counts distinct values whatever the attribute type holds them in.
_ANY_VALUE = (
    "coalesce(json_extract(instance, '$.value'), json_extract(instance, '$.object'),"
    " json_extract(instance, '$.languageMap'), json_extract(instance, '$.vocab'),"
    " json_extract(instance, '$.valueList'), json_extract(instance, '$.objectList'),"
    " json_extract(instance, '$.json'))"
)


def instances(conn: sqlite3.Connection, query: InstanceQuery) -> list[StoredInstance]:
    """Per pair, at most ``limit`` instances in the window (one indexed range scan each).

    One statement per pair: in-process SQLite has no round trip to save, and a LIMIT per pair
    lets each scan stop early, which a window function over every pair could not."""
    t = TIME[query.window.prop]
    order = "DESC" if query.newest_first else "ASC"
    out: list[StoredInstance] = []
    for entity_id, attr in query.pairs:
        params: list[Any] = [query.tenant, entity_id, attr]
        where = window_sql(query.window, params)
        params.append(query.limit)
        rows = conn.execute(
            f"SELECT hid, {t}, instance FROM attr_history"
            f" WHERE sid = {SID}{where}"
            f" ORDER BY {t} {order}, hid {order} LIMIT ?",
            params,
        )
        for hid, ms, doc in rows:
            out.append(StoredInstance(hid, entity_id, attr, from_ms(ms), orjson.loads(doc)))
    return out


def _bucket_sql(query: AggregateQuery, t: str, params: list[Any]) -> str:
    b = query.buckets
    if b.seconds:
        # Floor division that stays right for times before the origin.
        params.extend([to_ms(b.origin), b.seconds * 1000])
        d = f"({t} - ?1)"
        return f"(({d} - ((({d} % ?2) + ?2) % ?2)) / ?2)"
    if b.months:
        origin = b.origin.year * 12 + b.origin.month - 1
        params.extend([origin, b.months])
        m = (
            f"(CAST(strftime('%Y', {t} / 1000, 'unixepoch') AS INTEGER) * 12"
            f" + CAST(strftime('%m', {t} / 1000, 'unixepoch') AS INTEGER) - 1 - ?1)"
        )
        return f"(({m} - ((({m} % ?2) + ?2) % ?2)) / ?2)"
    return "0"


def aggregate(conn: sqlite3.Connection, query: AggregateQuery) -> list[AggregateRow]:
    """GROUP BY time bucket, per pair, over the covering index (no JSON read for numbers)."""
    t = TIME[query.window.prop]
    methods = query.methods
    out: list[AggregateRow] = []
    for entity_id, attr in query.pairs:
        shift = 0.0
        if "stddev" in methods:
            # Sums of (x - k) with k a value of the series keep the variance formula free of
            # catastrophic cancellation (SQLite has no stddev aggregate).
            params0: list[Any] = [query.tenant, entity_id, attr]
            where0 = window_sql(query.window, params0)
            row = conn.execute(
                f"SELECT num FROM attr_history WHERE sid = {SID}"
                f"{where0} AND num IS NOT NULL AND NOT deleted LIMIT 1",
                params0,
            ).fetchone()
            shift = float(row[0]) if row else 0.0
        # Numbered parameters: ?1/?2 belong to the bucket expression, the rest follow.
        bparams: list[Any] = []
        bucket = _bucket_sql(query, t, bparams)
        n = len(bparams)
        params: list[Any] = [*bparams, query.tenant, entity_id, attr]
        where = window_sql(query.window, params)
        where = renumber(where, n + 4)
        whole = query.buckets.whole
        cols = [f"min({t})" if whole else "NULL", f"max({t})" if whole else "NULL",
                "count(*)" if "totalCount" in methods else "NULL"]
        # Only what was asked: every aggregate costs a step per row.
        for method, expr in (
            ("distinctCount", f"count(DISTINCT {_ANY_VALUE})"),
            ("sum", "sum(num)"),
            ("avg", "avg(num)"),
            ("min", "min(num)"),
            ("max", "max(num)"),
            ("sumsq", "sum(num * num)"),
        ):
            cols.append(expr if method in methods else "NULL")
        if "stddev" in methods:
            params.append(shift)
            k = f"?{len(params)}"
            cols += ["count(num)", f"sum(num - {k})", f"sum((num - {k}) * (num - {k}))"]
        else:
            cols += ["NULL", "NULL", "NULL"]
        rows = conn.execute(
            f"SELECT dataset_id, {bucket} AS b, {', '.join(cols)} FROM attr_history"
            f" WHERE sid = {sid_sql(n + 1)}{where}"
            " AND NOT deleted GROUP BY dataset_id, b ORDER BY dataset_id, b",
            params,
        )
        for row in rows:
            out.append(_aggregate_row(entity_id, attr, row, methods))
    return out


def _aggregate_row(
    entity_id: str, attr: str, row: Sequence[Any], methods: frozenset[str]
) -> AggregateRow:
    (dataset_id, bucket, first, last, total, distinct, s, avg, lo, hi, sq, n, s1, s2) = row
    stddev = None
    if n and n > 1:
        var = (s2 - s1 * s1 / n) / (n - 1)
        stddev = max(var, 0.0) ** 0.5
    values: dict[str, float | int | None] = {
        "totalCount": total,
        "distinctCount": distinct,
        "sum": s,
        "avg": avg,
        "min": lo,
        "max": hi,
        "stddev": stddev,
        "sumsq": sq,
    }
    return AggregateRow(
        entity_id,
        attr,
        dataset_id,
        int(bucket),
        from_ms(first),
        from_ms(last),
        {m: values[m] for m in methods},
    )


def entities_with_history(
    conn: sqlite3.Connection, tenant: str, entity_ids: Sequence[str]
) -> set[str]:
    found: set[str] = set()
    for eid in entity_ids:
        row = conn.execute(
            "SELECT 1 FROM history_series s JOIN attr_history h ON h.sid = s.sid"
            " WHERE s.tenant = ? AND s.entity_id = ? LIMIT 1",
            (tenant, eid),
        ).fetchone()
        if row:
            found.add(eid)
    return found


def get_instance(
    conn: sqlite3.Connection, tenant: str, entity_id: str, attr: str, hid: int
) -> StoredInstance | None:
    row = conn.execute(
        f"SELECT ts_ms, instance FROM attr_history WHERE hid = ? AND sid = {SID}",
        (hid, tenant, entity_id, attr),
    ).fetchone()
    if row is None:
        return None
    return StoredInstance(hid, entity_id, attr, from_ms(row[0]), orjson.loads(row[1]))


# --- writes (own short connection) -----------------------------------------------------------


def write(path: str, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` in one IMMEDIATE transaction on a short connection of its own."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result
    finally:
        conn.close()


def delete_history(
    conn: sqlite3.Connection,
    tenant: str,
    entity_id: str,
    attr: str | None,
    dataset_id: str | None,
    all_datasets: bool,
) -> int:
    series = "SELECT sid FROM history_series WHERE tenant = ? AND entity_id = ?"
    params: list[Any] = [tenant, entity_id]
    if attr is not None:
        series += " AND attr = ?"
        params.append(attr)
    sql = f"DELETE FROM attr_history WHERE sid IN ({series})"
    if attr is not None and not all_datasets:
        sql += " AND dataset_id IS ?"
        params.append(dataset_id)
    return conn.execute(sql, params).rowcount


def replace_instance(
    conn: sqlite3.Connection, tenant: str, entity_id: str, attr: str, hid: int, inst: Instance
) -> bool:
    # The derived columns follow the instance; without observedAt the time stays the row's
    # modification time (what the effective time falls back to).
    cur = conn.execute(
        "UPDATE attr_history SET instance = ?, observed_at = ?, dataset_id = ?,"
        f" ts_ms = coalesce(?, {ms_of('modified_at')}), num = ?, deleted = ?, txt = ?"
        f" WHERE hid = ? AND sid = {SID}",
        (
            orjson.dumps(inst).decode(),
            inst.get("observedAt"),
            inst.get("datasetId"),
            instant_ms(inst.get("observedAt")),
            numeric(inst),
            1 if "deletedAt" in inst else 0,
            short_text(inst),
            hid,
            tenant,
            entity_id,
            attr,
        ),
    )
    return cur.rowcount > 0


def delete_instance(
    conn: sqlite3.Connection, tenant: str, entity_id: str, attr: str, hid: int
) -> bool:
    cur = conn.execute(
        f"DELETE FROM attr_history WHERE hid = ? AND sid = {SID}",
        (hid, tenant, entity_id, attr),
    )
    return cur.rowcount > 0


def _selector_sql(sel: Selector, params: list[Any]) -> str:
    parts: list[str] = []
    if sel.tenant is not None:
        parts.append("h.tenant = ?")
        params.append(sel.tenant)
    if sel.attr is not None:
        parts.append(_iri_match("h.attr", sel.attr, params))
    if sel.entity_type is not None:
        # The current types; for an entity that no longer exists, those its markers keep.
        match = _iri_match("t.type", sel.entity_type, params)
        kept = _iri_match("j.value", sel.entity_type, params)
        parts.append(
            "(h.entity_id IN (SELECT t.id FROM entity_types t"
            f" WHERE t.tenant = h.tenant AND {match})"
            " OR (NOT EXISTS (SELECT 1 FROM entities e WHERE e.tenant = h.tenant"
            "  AND e.id = h.entity_id)"
            "  AND EXISTS (SELECT 1 FROM history_keyed m, json_each(m.instance, '$.types') j"
            f"   WHERE m.tenant = h.tenant AND m.entity_id = h.entity_id"
            f"   AND m.attr = '{ENTITY_MARKER}' AND {kept})))"
        )
    return " AND ".join(parts) if parts else "1"


def _iri_match(column: str, name: str, params: list[Any]) -> str:
    """The column is the IRI ``name`` or ends with ``/name`` or ``#name`` (a short term)."""
    # Each suffix is bound twice: once for its length, once for the comparison.
    params.extend([name, "/" + name, "/" + name, "#" + name, "#" + name])
    return (
        f"({column} = ? OR substr({column}, -length(?)) = ?"
        f" OR substr({column}, -length(?)) = ?)"
    )


def prune(
    conn: sqlite3.Connection, selector: Selector, before: datetime, shadowed: Sequence[Selector]
) -> int:
    """Instances first; then entity markers whose entity has nothing else left (a marker is
    what keeps a deleted entity reachable, and what type rules match its history by)."""
    params: list[Any] = []
    where = _selector_sql(selector, params)
    where += " AND h.ts_ms < ?"
    params.append(to_ms(before))
    for other in shadowed:
        where += f" AND NOT ({_selector_sql(other, params)})"
    gone = conn.execute(
        "DELETE FROM attr_history WHERE hid IN (SELECT h.hid FROM history_keyed h"
        f" WHERE {where} AND h.attr <> '{ENTITY_MARKER}')",
        params,
    ).rowcount
    return gone + conn.execute(
        "DELETE FROM attr_history WHERE hid IN (SELECT h.hid FROM history_keyed h"
        f" WHERE {where} AND h.attr = '{ENTITY_MARKER}' AND NOT EXISTS (SELECT 1"
        " FROM history_keyed o WHERE o.tenant = h.tenant AND o.entity_id = h.entity_id"
        f" AND o.attr <> '{ENTITY_MARKER}'))",
        params,
    ).rowcount
