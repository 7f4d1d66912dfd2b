"""Raw insert baselines for history rows (used by ``bench_kpi.py``): the engine inserting the
very rows a backfill writes, with no platform code around it, in the same database and run.

Every baseline gets the rows fully prepared before its clock starts and writes them 50,000 a
transaction, with the engine's plain bulk statement and, on PostgreSQL, COPY:

* **bare** — the readings as they come: seven columns (tenant, entity id, attribute IRI,
  datasetId, observedAt, modifiedAt, the instance as its final JSON text), no index, no
  generated column: the engine's floor cost for these rows; no history store that answers
  temporal queries could be this cheap. The target is judged against it.
* **bare, series layout** — the same, but in the row layout Nakhon stores since migration 6
  (series id instead of the three strings, and on SQLite the derived columns precomputed), no
  index: shown so that what the smaller rows gain is visible on its own.
* **same** — a copy of ``attr_history`` made from its own DDL (SQLite) or ``LIKE … INCLUDING
  ALL`` (PostgreSQL), with its indexes (and on PostgreSQL its ``hid`` identity), rows in that
  layout with the derived columns the writers send: what the engine needs for these rows alone.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from nakhon.storage.rows import numeric
from nakhon.storage.sqlite.series import instant_ms, short_text

CHUNK = 50_000
COLUMNS = ["tenant", "entity_id", "attr", "dataset_id", "observed_at", "modified_at", "instance"]
SERIES_COLUMNS = ["sid", "dataset_id", "observed_at", "modified_at", "instance"]
SQLITE_DERIVED = ["ts_ms", "num", "deleted", "txt"]
PG_DERIVED = ["ts", "num", "deleted"]


def _insert(table: str, columns: list[str], marker: str = "?") -> str:
    marks = ", ".join(
        marker if marker == "?" else f"{marker}{i}" for i in range(1, len(columns) + 1)
    )
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


def _series_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """(sid, datasetId, observedAt, modifiedAt, instance): sids numbered per distinct key."""
    sids: dict[tuple[Any, Any, Any], int] = {}
    return [(sids.setdefault(r[:3], len(sids) + 1), *r[3:]) for r in rows]


def _sqlite_series_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The series layout with the derived columns SQLite's writer adds."""
    out = []
    for r in _series_rows(rows):
        ts = instant_ms(r[2]) if r[2] is not None else instant_ms(r[3])
        inst = orjson.loads(r[4])
        out.append((*r, ts, numeric(inst), 0, short_text(inst)))
    return out


def _pg_derived(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The series layout with the derived columns PostgreSQL's writer adds (migration 0009)."""
    return [(*r, r[2] if r[2] is not None else r[3], numeric(orjson.loads(r[4])), False)
            for r in rows]


Seconds = tuple[float, float]
"""(wall-clock, CPU time of this process) seconds."""


def _sqlite_time(
    conn: sqlite3.Connection, table: str, columns: list[str], rows: list[tuple[Any, ...]]
) -> Seconds:
    sql = _insert(table, columns)
    t, c = time.perf_counter(), time.process_time()
    for i in range(0, len(rows), CHUNK):
        conn.execute("BEGIN")
        conn.executemany(sql, rows[i : i + CHUNK])
        conn.execute("COMMIT")
    spent = (time.perf_counter() - t, time.process_time() - c)
    conn.execute(f"DROP TABLE {table}")
    return spent


def sqlite_baselines(path: str, rows: list[tuple[Any, ...]]) -> dict[str, Seconds]:
    """Seconds of ``executemany`` into the bare tables and into a copy of ``attr_history``."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE raw_bare (tenant TEXT, entity_id TEXT, attr TEXT, dataset_id TEXT,"
            " observed_at TEXT, modified_at TEXT, instance TEXT)"
        )
        out = {"bare, executemany": _sqlite_time(conn, "raw_bare", COLUMNS, rows)}
        series = _sqlite_series_rows(rows)
        layout = SERIES_COLUMNS + SQLITE_DERIVED
        conn.execute(
            "CREATE TABLE raw_bare (sid INTEGER, dataset_id TEXT, observed_at TEXT,"
            " modified_at TEXT, instance TEXT, ts_ms INTEGER, num REAL, deleted INTEGER, txt TEXT)"
        )
        out["bare, series layout, executemany"] = _sqlite_time(conn, "raw_bare", layout, series)
        ddl = [
            r[0]
            for r in conn.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'attr_history'"
                " AND sql IS NOT NULL ORDER BY type DESC"
            )
        ]
        for statement in ddl:  # the table first ('table' > 'index'), then its index
            conn.execute(statement.replace("attr_history", "raw_same"))
        out["same, executemany"] = _sqlite_time(conn, "raw_same", layout, series)
        return out
    finally:
        conn.close()


def _pg_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return [(a, b, c, d, at(e), at(f), g) for a, b, c, d, e, f, g in rows]


async def _pg_time(
    conn: asyncpg.Connection, table: str, columns: list[str], rows: list[tuple[Any, ...]],
    copy: bool,
) -> Seconds:
    sql = _insert(table, columns, "$")
    t, c = time.perf_counter(), time.process_time()
    for i in range(0, len(rows), CHUNK):
        async with conn.transaction():
            if copy:
                await conn.copy_records_to_table(
                    table, records=rows[i : i + CHUNK], columns=columns
                )
            else:
                await conn.executemany(sql, rows[i : i + CHUNK])
    return time.perf_counter() - t, time.process_time() - c


async def postgres_baselines(dsn: str, rows: list[tuple[Any, ...]]) -> dict[str, Seconds]:
    """Seconds of ``executemany`` and binary COPY into the bare tables, and of COPY into a copy
    of ``attr_history`` (a fresh table for each measure, dropped after it). ``executemany``
    into the copy is left out: ~5× slower than COPY there, and not how history is written."""
    conn = await asyncpg.connect(dsn)
    pg = _pg_rows(rows)
    series = _series_rows(pg)
    out: dict[str, Seconds] = {}
    bare = (
        "CREATE TABLE {t} (tenant text COLLATE \"C\", entity_id text COLLATE \"C\","
        " attr text COLLATE \"C\", dataset_id text COLLATE \"C\", observed_at timestamptz,"
        " modified_at timestamptz, instance jsonb)"
    )
    bare_series = (
        "CREATE TABLE {t} (sid integer, dataset_id text COLLATE \"C\", observed_at timestamptz,"
        " modified_at timestamptz, instance jsonb)"
    )
    same = "CREATE TABLE {t} (LIKE attr_history INCLUDING ALL)"
    try:
        for name, ddl, columns, data, copy in (
            ("bare, executemany", bare, COLUMNS, pg, False),
            ("bare, COPY", bare, COLUMNS, pg, True),
            ("bare, series layout, COPY", bare_series, SERIES_COLUMNS, series, True),
            ("same, COPY", same, SERIES_COLUMNS + PG_DERIVED, _pg_derived(series), True),
        ):
            await conn.execute(ddl.format(t="raw_bench"))
            try:
                out[name] = await _pg_time(conn, "raw_bench", columns, data, copy)
            finally:
                await conn.execute("DROP TABLE raw_bench")
        return out
    finally:
        await conn.close()
