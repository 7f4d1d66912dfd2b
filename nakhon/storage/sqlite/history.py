"""Temporal history on SQLite: the read side and temporal provision (``storage.history_base``).

Reads run on the engine's reader connections. Times are integer epoch milliseconds inside SQL
(``ts_ms``, a generated column, migration 3): SQLite's date functions keep milliseconds as an
integer internally, so the same instant written with any offset gives the same key, and bounds
compared against it are exact. Provision writes use a short connection of their own, like the
kv writes: they are rare, and SQLite's lock serialises them with the entity writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson

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

T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms_of(column: str) -> str:
    return f"CAST(round((julianday({column}) - 2440587.5) * 86400000.0) AS INTEGER)"


# The time of an instance per time property, as epoch milliseconds.
_TIME = {
    "observedAt": "ts_ms",
    "modifiedAt": _ms_of("modified_at"),
    "createdAt": _ms_of("json_extract(instance, '$.createdAt')"),
    "deletedAt": "ts_ms",  # a marker is written at its deletedAt (and _window adds "deleted")
}

# distinctCount counts distinct values whatever the attribute type holds them in.
_ANY_VALUE = (
    "coalesce(json_extract(instance, '$.value'), json_extract(instance, '$.object'),"
    " json_extract(instance, '$.languageMap'), json_extract(instance, '$.vocab'),"
    " json_extract(instance, '$.valueList'), json_extract(instance, '$.objectList'),"
    " json_extract(instance, '$.json'))"
)


def to_ms(value: datetime) -> int:
    """An aware datetime → epoch milliseconds (floor)."""
    return (value - _EPOCH) // timedelta(milliseconds=1)


def from_ms(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(milliseconds=value)


def _window(window: TimeWindow, params: list[Any]) -> str:
    t = _TIME[window.prop]
    sql = f" AND {t} IS NOT NULL"
    if window.prop == "deletedAt":
        sql += " AND deleted"
    if window.start is not None:
        sql += f" AND {t} >= ?"
        params.append(to_ms(window.start))
    if window.end is not None:
        sql += f" AND {t} < ?"
        params.append(to_ms(window.end))
    return sql


def instances(conn: sqlite3.Connection, query: InstanceQuery) -> list[StoredInstance]:
    """Per pair, at most ``limit`` instances in the window (one indexed range scan each).

    One statement per pair: in-process SQLite has no round trip to save, and a LIMIT per pair
    lets each scan stop early, which a window function over every pair could not."""
    t = _TIME[query.window.prop]
    order = "DESC" if query.newest_first else "ASC"
    out: list[StoredInstance] = []
    for entity_id, attr in query.pairs:
        params: list[Any] = [query.tenant, entity_id, attr]
        where = _window(query.window, params)
        params.append(query.limit)
        rows = conn.execute(
            f"SELECT hid, {t}, instance FROM attr_history"
            f" WHERE tenant = ? AND entity_id = ? AND attr = ?{where}"
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
    t = _TIME[query.window.prop]
    methods = query.methods
    out: list[AggregateRow] = []
    for entity_id, attr in query.pairs:
        shift = 0.0
        if "stddev" in methods:
            # Sums of (x - k) with k a value of the series keep the variance formula free of
            # catastrophic cancellation (SQLite has no stddev aggregate).
            params0: list[Any] = [query.tenant, entity_id, attr]
            where0 = _window(query.window, params0)
            row = conn.execute(
                f"SELECT num FROM attr_history WHERE tenant = ? AND entity_id = ? AND attr = ?"
                f"{where0} AND num IS NOT NULL AND NOT deleted LIMIT 1",
                params0,
            ).fetchone()
            shift = float(row[0]) if row else 0.0
        # Numbered parameters: ?1/?2 belong to the bucket expression, the rest follow.
        bparams: list[Any] = []
        bucket = _bucket_sql(query, t, bparams)
        n = len(bparams)
        params: list[Any] = [*bparams, query.tenant, entity_id, attr]
        where = _window(query.window, params)
        where = _renumber(where, n + 4)
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
            f" WHERE tenant = ?{n + 1} AND entity_id = ?{n + 2} AND attr = ?{n + 3}{where}"
            " AND NOT deleted GROUP BY dataset_id, b ORDER BY dataset_id, b",
            params,
        )
        for row in rows:
            out.append(_aggregate_row(entity_id, attr, row, methods))
    return out


def _renumber(where: str, first: int) -> str:
    """Give the window's ``?`` placeholders explicit numbers from ``first`` on."""
    parts = where.split("?")
    out = parts[0]
    for i, part in enumerate(parts[1:]):
        out += f"?{first + i}{part}"
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
            "SELECT 1 FROM attr_history WHERE tenant = ? AND entity_id = ? LIMIT 1", (tenant, eid)
        ).fetchone()
        if row:
            found.add(eid)
    return found


def attrs_of(
    conn: sqlite3.Connection, tenant: str, entity_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Distinct attributes per entity by skipping through the index (one seek per attribute,
    however long its history)."""
    out: dict[str, list[str]] = {}
    for eid in entity_ids:
        names: list[str] = []
        row = conn.execute(
            "SELECT min(attr) FROM attr_history WHERE tenant = ? AND entity_id = ?", (tenant, eid)
        ).fetchone()
        while row is not None and row[0] is not None:
            if row[0] != ENTITY_MARKER:
                names.append(row[0])
            row = conn.execute(
                "SELECT min(attr) FROM attr_history WHERE tenant = ? AND entity_id = ?"
                " AND attr > ?",
                (tenant, eid, row[0]),
            ).fetchone()
        if names:
            out[eid] = names
    return out


def deleted_entities(conn: sqlite3.Connection, query: DeletedQuery) -> list[DeletedEntity]:
    """Entity markers of entities that do not exist now (partial index on the markers), the
    newest per entity; then, with a window, those with an instance in it."""
    params: list[Any] = [query.tenant]
    sql = (
        "SELECT m.entity_id, m.instance FROM attr_history m"
        f" WHERE m.tenant = ? AND m.attr = '{ENTITY_MARKER}'"
    )
    if query.ids is not None:
        sql += f" AND m.entity_id IN ({', '.join('?' * len(query.ids))})"
        params.extend(query.ids)
    if query.types is not None:
        sql += (
            " AND EXISTS (SELECT 1 FROM json_each(m.instance, '$.types') j"
            f" WHERE j.value IN ({', '.join('?' * len(query.types))}))"
        )
        params.extend(query.types)
    sql += (
        " AND NOT EXISTS (SELECT 1 FROM entities e WHERE e.tenant = m.tenant"
        " AND e.id = m.entity_id) ORDER BY m.entity_id, m.ts_ms DESC, m.hid DESC"
    )
    found: dict[str, DeletedEntity] = {}
    for eid, doc in conn.execute(sql, params):
        if eid not in found:
            found[eid] = _deleted(eid, orjson.loads(doc))
    if query.window is None:
        return list(found.values())
    out: list[DeletedEntity] = []
    for eid, item in found.items():
        wparams: list[Any] = [query.tenant, eid]
        where = ""
        if query.attrs:
            where = f" AND attr IN ({', '.join('?' * len(query.attrs))})"
            wparams.extend(query.attrs)
        where += _window(query.window, wparams)
        row = conn.execute(
            f"SELECT 1 FROM attr_history WHERE tenant = ? AND entity_id = ?{where} LIMIT 1",
            wparams,
        ).fetchone()
        if row is not None:
            out.append(item)
    return out


def _deleted(entity_id: str, doc: dict[str, Any]) -> DeletedEntity:
    scope = doc.get("scope")
    return DeletedEntity(
        entity_id,
        list(doc.get("types") or []),
        list(scope) if scope is not None else None,
        str(doc.get("createdAt") or doc.get("deletedAt")),
        str(doc.get("deletedAt")),
    )


def get_instance(
    conn: sqlite3.Connection, tenant: str, entity_id: str, attr: str, hid: int
) -> StoredInstance | None:
    row = conn.execute(
        "SELECT ts_ms, instance FROM attr_history"
        " WHERE hid = ? AND tenant = ? AND entity_id = ? AND attr = ?",
        (hid, tenant, entity_id, attr),
    ).fetchone()
    if row is None:
        return None
    return StoredInstance(hid, entity_id, attr, from_ms(row[0]), orjson.loads(row[1]))


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
        where = _window(query.window, params)
        if query.min_value is not None:
            where += " AND num >= ?"
            params.append(query.min_value)
        where = _renumber(where, 7)
        rows = conn.execute(
            f"SELECT b, {_floor('num / ?6')} AS bin, count(*), sum(num)"
            f" FROM (SELECT {bucket} AS b, num FROM attr_history"
            f"  WHERE tenant = ?3 AND entity_id = ?4 AND attr = ?5{where} AND num IS NOT NULL)"
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
    """LEAD over (time, hid) per bucket gives each instance its holding time; the value is
    read from the instance (strings are not in the index)."""
    out: list[StateRow] = []
    for entity_id, attr in query.pairs:
        bucket, params = _reduction_params(query.tenant, entity_id, attr, query.buckets)
        params.append(to_ms(query.until))
        where = _renumber(_window(query.window, params), 7)
        rows = conn.execute(
            "SELECT b, v, sum(u - t) FROM ("
            " SELECT b, t, deleted, json_type(instance, '$.value') AS jt,"
            "  json_extract(instance, '$.value') AS v,"
            "  coalesce(lead(t) OVER (PARTITION BY b ORDER BY t, hid),"
            "   min(?1 + (b + 1) * ?2, ?6)) AS u"
            f" FROM (SELECT {bucket} AS b, ts_ms AS t, hid, deleted, instance FROM attr_history"
            f"  WHERE tenant = ?3 AND entity_id = ?4 AND attr = ?5{where}))"
            " WHERE jt = 'text' AND NOT deleted AND u > t GROUP BY b, v ORDER BY b, v",
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
        where = _renumber(_window(query.window, params), 7)
        rows = conn.execute(
            "SELECT b, count(*), sum(num), sum(p - num >= ?6) FROM ("
            " SELECT b, num, lag(num) OVER (PARTITION BY b ORDER BY t, hid) AS p"
            f" FROM (SELECT {bucket} AS b, ts_ms AS t, hid, num FROM attr_history"
            f"  WHERE tenant = ?3 AND entity_id = ?4 AND attr = ?5{where} AND num IS NOT NULL))"
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
        where = _renumber(_window(query.window, params), 7)
        rows = conn.execute(
            f"SELECT DISTINCT {bucket} FROM attr_history"
            f" WHERE tenant = ?3 AND entity_id = ?4 AND attr = ?5{where} AND hid > ?6",
            params,
        )
        found.update(int(r[0]) for r in rows)
    return found


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
    sql = "DELETE FROM attr_history WHERE tenant = ? AND entity_id = ?"
    params: list[Any] = [tenant, entity_id]
    if attr is not None:
        sql += " AND attr = ?"
        params.append(attr)
        if not all_datasets:
            sql += " AND dataset_id IS ?"
            params.append(dataset_id)
    return conn.execute(sql, params).rowcount


def replace_instance(
    conn: sqlite3.Connection, tenant: str, entity_id: str, attr: str, hid: int, inst: Instance
) -> bool:
    cur = conn.execute(
        "UPDATE attr_history SET instance = ?, observed_at = ?, dataset_id = ?"
        " WHERE hid = ? AND tenant = ? AND entity_id = ? AND attr = ?",
        (
            orjson.dumps(inst).decode(),
            inst.get("observedAt"),
            inst.get("datasetId"),
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
        "DELETE FROM attr_history WHERE hid = ? AND tenant = ? AND entity_id = ? AND attr = ?",
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
            "  AND EXISTS (SELECT 1 FROM attr_history m, json_each(m.instance, '$.types') j"
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
        "DELETE FROM attr_history WHERE hid IN (SELECT h.hid FROM attr_history h"
        f" WHERE {where} AND h.attr <> '{ENTITY_MARKER}')",
        params,
    ).rowcount
    return gone + conn.execute(
        "DELETE FROM attr_history WHERE hid IN (SELECT h.hid FROM attr_history h"
        f" WHERE {where} AND h.attr = '{ENTITY_MARKER}' AND NOT EXISTS (SELECT 1"
        " FROM attr_history o WHERE o.tenant = h.tenant AND o.entity_id = h.entity_id"
        f" AND o.attr <> '{ENTITY_MARKER}'))",
        params,
    ).rowcount
