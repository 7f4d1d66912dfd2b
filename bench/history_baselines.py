"""Raw insert baselines for history rows (used by ``bench_kpi.py``): the engine inserting the
very rows a backfill writes, with no platform code around it, in the same database and run.

Every baseline gets the rows fully prepared before its clock starts — the seven
``attr_history`` columns with the instance as its final JSON text — and writes them 50,000 a
transaction. Two tables, each with the engine's plain bulk statement and, on PostgreSQL, COPY:

* **bare** — the seven columns, no index, no generated column: the engine's floor cost for
  these bytes; no history store that answers temporal queries could be this cheap.
* **same** — a copy of ``attr_history`` made from its own DDL (SQLite) or ``LIKE … INCLUDING
  ALL`` (PostgreSQL): its generated columns (effective time, numeric value, and on PostgreSQL
  the ``hid`` identity) and its indexes — what the engine needs for these rows alone.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from typing import Any

import asyncpg

CHUNK = 50_000
COLUMNS = ["tenant", "entity_id", "attr", "dataset_id", "observed_at", "modified_at", "instance"]
_INSERT = (
    "INSERT INTO {t} (tenant, entity_id, attr, dataset_id, observed_at, modified_at, instance)"
    " VALUES ({p})"
)


Seconds = tuple[float, float]
"""(wall-clock, CPU time of this process) seconds."""


def _sqlite_time(conn: sqlite3.Connection, table: str, rows: list[tuple[Any, ...]]) -> Seconds:
    sql = _INSERT.format(t=table, p=",".join("?" * 7))
    t, c = time.perf_counter(), time.process_time()
    for i in range(0, len(rows), CHUNK):
        conn.execute("BEGIN")
        conn.executemany(sql, rows[i : i + CHUNK])
        conn.execute("COMMIT")
    spent = (time.perf_counter() - t, time.process_time() - c)
    conn.execute(f"DROP TABLE {table}")
    return spent


def sqlite_baselines(path: str, rows: list[tuple[Any, ...]]) -> dict[str, Seconds]:
    """Seconds of ``executemany`` into the bare table and into a copy of ``attr_history``."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE raw_bare (tenant TEXT, entity_id TEXT, attr TEXT, dataset_id TEXT,"
            " observed_at TEXT, modified_at TEXT, instance TEXT)"
        )
        out = {"bare, executemany": _sqlite_time(conn, "raw_bare", rows)}
        ddl = [
            r[0]
            for r in conn.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'attr_history'"
                " AND sql IS NOT NULL ORDER BY type DESC"
            )
        ]
        for statement in ddl:  # the table first ('table' > 'index'), then its index
            conn.execute(statement.replace("attr_history", "raw_same"))
        out["same, executemany"] = _sqlite_time(conn, "raw_same", rows)
        return out
    finally:
        conn.close()


def _pg_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return [(a, b, c, d, at(e), at(f), g) for a, b, c, d, e, f, g in rows]


async def _pg_time(
    conn: asyncpg.Connection, table: str, rows: list[tuple[Any, ...]], copy: bool
) -> Seconds:
    sql = _INSERT.format(t=table, p=",".join(f"${i}" for i in range(1, 8)))
    t, c = time.perf_counter(), time.process_time()
    for i in range(0, len(rows), CHUNK):
        async with conn.transaction():
            if copy:
                await conn.copy_records_to_table(
                    table, records=rows[i : i + CHUNK], columns=COLUMNS
                )
            else:
                await conn.executemany(sql, rows[i : i + CHUNK])
    return time.perf_counter() - t, time.process_time() - c


async def postgres_baselines(dsn: str, rows: list[tuple[Any, ...]]) -> dict[str, Seconds]:
    """Seconds of ``executemany`` and binary COPY into the bare table, and of COPY into a copy
    of ``attr_history`` (a fresh table for each measure, dropped after it). ``executemany``
    into the copy is left out: ~5× slower than COPY there, and not how history is written."""
    conn = await asyncpg.connect(dsn)
    pg = _pg_rows(rows)
    out: dict[str, Seconds] = {}
    bare = (
        "CREATE TABLE {t} (tenant text COLLATE \"C\", entity_id text COLLATE \"C\","
        " attr text COLLATE \"C\", dataset_id text COLLATE \"C\", observed_at timestamptz,"
        " modified_at timestamptz, instance jsonb)"
    )
    same = "CREATE TABLE {t} (LIKE attr_history INCLUDING ALL)"
    try:
        for name, ddl, copy in (
            ("bare, executemany", bare, False),
            ("bare, COPY", bare, True),
            ("same, COPY", same, True),
        ):
            await conn.execute(ddl.format(t="raw_bench"))
            try:
                out[name] = await _pg_time(conn, "raw_bench", pg, copy)
            finally:
                await conn.execute("DROP TABLE raw_bench")
        return out
    finally:
        await conn.close()
