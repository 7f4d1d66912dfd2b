"""Deep history for ``bench_kpi.py --sql-fill``: the older days written by SQL inside the
engine, so that 90 days × 5,000 devices (130 M rows) load in minutes, not hours.

The rows are the ones the bulk backfill stores (``nakhon.temporal.bulk.append_in_order``
through the writer): the same ``attr_history`` rows (keyed by the series id of
``history_series``, migration 6), the same instance document —
``{"type": "Property", "value": …, "observedAt": …, "createdAt": …, "modifiedAt": …}`` in that
key order, ``totalSpotNumber`` on an off-street car park's last reading of the day — the same
value rules per device type (``bench_kpi.value``; the random draws come from the engine's own
generator, not Python's), one transaction per day, devices in order and each device's readings
in time order (as the backfill writes them, so ``hid`` follows time). The engine computes its
derived columns (on SQLite written as the writer writes them: effective time, number, marker
flag; on PostgreSQL, since migration 0009, the same three from SQL) and index entries as
for any insert. Only entity state is not written here:
the newest day goes through the real write path afterwards, which creates every entity with
its current value, exactly as a backfill would.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, date, datetime

import asyncpg

from nakhon.broker.jsonld import CORE_TERM_MAP
from nakhon.kpi.periods import day_start_utc

PER_DAY = 288


def _device_rows(devs: list[tuple[str, str, str]]) -> list[tuple[int, str, str, str]]:
    expand = CORE_TERM_MAP.expand
    return [(n, eid, etype, expand(attr)) for n, (eid, etype, attr) in enumerate(devs)]


_SQLITE_VALUE = """CASE d.etype
    WHEN 'ParkingSpot' THEN CASE WHEN abs(random()) % 1000 < 600 THEN 'occupied' ELSE 'free' END
    WHEN 'Streetlight' THEN CASE WHEN (s.k / 12) % 24 >= 18 OR (s.k / 12) % 24 < 6
                                 THEN 100.0 ELSE 0.0 END
    WHEN 'WasteContainer' THEN round((s.k % 288) / 288.0, 3)
    WHEN 'OffStreetParking' THEN abs(random()) % 201
    ELSE round(5 + (abs(random()) % 750001) / 10000.0, 1) END"""


def sqlite_fill(
    path: str, tenant: str, devs: list[tuple[str, str, str]], days: list[date], progress: bool
) -> float:
    """Write the days' history rows; returns seconds. The database must not be open elsewhere:
    loading runs without a journal (a throwaway file: a crash loses the benchmark, nothing
    else) and puts WAL mode back at the end."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1048576")
    conn.execute("CREATE TEMP TABLE fill_dev (n INTEGER PRIMARY KEY, eid, etype, attr, sid)")
    conn.executemany("INSERT INTO fill_dev (n, eid, etype, attr) VALUES (?, ?, ?, ?)",
                     _device_rows(devs))
    conn.execute("INSERT OR IGNORE INTO history_series (tenant, entity_id, attr)"
                 " SELECT ?, eid, attr FROM fill_dev ORDER BY n", (tenant,))
    conn.execute("UPDATE fill_dev SET sid = (SELECT sid FROM history_series s WHERE"
                 " s.tenant = ? AND s.entity_id = fill_dev.eid AND s.attr = fill_dev.attr)",
                 (tenant,))
    conn.execute("CREATE TEMP TABLE fill_step (k INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO fill_step VALUES (?)", [(k,) for k in range(PER_DAY)])
    sql = f"""
        INSERT INTO attr_history
            (sid, dataset_id, observed_at, modified_at, instance, ts_ms, num, deleted, txt)
        SELECT sid, NULL, ts, ?3, instance, ms,
            CASE json_type(instance, '$.value') WHEN 'integer' THEN json_extract(instance,
                '$.value') WHEN 'real' THEN json_extract(instance, '$.value') END, 0,
            CASE json_type(instance, '$.value') WHEN 'text' THEN json_extract(instance,
                '$.value') END
        FROM (SELECT d.n, s.k, d.sid, s.ts, (?2 + s.k * 300) * 1000 AS ms,
            CASE WHEN d.etype = 'OffStreetParking' AND s.k = {PER_DAY - 1}
            THEN json_object('type', 'Property', 'value', {_SQLITE_VALUE}, 'observedAt', s.ts,
                 'totalSpotNumber', json_object('type', 'Property', 'value', 200),
                 'createdAt', ?3, 'modifiedAt', ?3)
            ELSE json_object('type', 'Property', 'value', {_SQLITE_VALUE}, 'observedAt', s.ts,
                 'createdAt', ?3, 'modifiedAt', ?3) END AS instance
        FROM fill_dev d CROSS JOIN (
            SELECT k, strftime('%Y-%m-%dT%H:%M:%SZ', ?2 + k * 300, 'unixepoch') AS ts
            FROM fill_step) s ORDER BY d.n, s.k)"""
    t = time.perf_counter()
    for i, day in enumerate(days):
        start = int(day_start_utc(day).timestamp())
        conn.execute("BEGIN")
        conn.execute(sql, (tenant, start, now))
        conn.execute("COMMIT")
        if progress:
            spent = time.perf_counter() - t
            done = (i + 1) * len(devs) * PER_DAY
            print(f"SQL fill {day}: {done:,} rows, {done / spent:,.0f} rows/s", flush=True)
    spent = time.perf_counter() - t
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return spent


_PG_VALUE = """CASE d.etype
    WHEN 'ParkingSpot' THEN to_jsonb(CASE WHEN random() < 0.6 THEN 'occupied' ELSE 'free' END)
    WHEN 'Streetlight' THEN to_jsonb(CASE WHEN (s.k / 12) % 24 >= 18 OR (s.k / 12) % 24 < 6
                                          THEN 100.0 ELSE 0.0 END)
    WHEN 'WasteContainer' THEN to_jsonb(round((s.k % 288) / 288.0, 3))
    WHEN 'OffStreetParking' THEN to_jsonb(floor(random() * 201)::int)
    ELSE to_jsonb(round((5 + random() * 75)::numeric, 1)) END"""


_FILL_DEV = "CREATE TEMP TABLE fill_dev (n int PRIMARY KEY, eid text, etype text, attr text)"


async def postgres_fill(
    dsn: str, tenant: str, devs: list[tuple[str, str, str]], days: list[date], progress: bool
) -> float:
    """Write the days' history rows; returns seconds."""
    now = datetime.now(UTC)
    now_text = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_FILL_DEV)
        await conn.copy_records_to_table("fill_dev", records=_device_rows(devs))
        await conn.execute(
            "INSERT INTO history_series (tenant, entity_id, attr)"
            " SELECT $1, eid, attr FROM fill_dev ORDER BY n ON CONFLICT DO NOTHING",
            tenant,
        )
        sql = f"""
            INSERT INTO attr_history
                (sid, dataset_id, observed_at, modified_at, instance, ts, num, deleted)
            SELECT sid, NULL, ts, $3, instance, ts,
                CASE WHEN jsonb_typeof(instance -> 'value') = 'number'
                     THEN (instance -> 'value')::double precision END, false
            FROM (SELECT d.n, s.k, h.sid, s.ts,
                jsonb_build_object('type', 'Property', 'value', {_PG_VALUE},
                    'observedAt', to_char(s.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                    'createdAt', $4::text, 'modifiedAt', $4::text)
                || CASE WHEN d.etype = 'OffStreetParking' AND s.k = {PER_DAY - 1}
                   THEN '{{"totalSpotNumber": {{"type": "Property", "value": 200}}}}'::jsonb
                   ELSE '{{}}'::jsonb END AS instance
            FROM fill_dev d
            JOIN history_series h ON h.tenant = $1 AND h.entity_id = d.eid AND h.attr = d.attr
            CROSS JOIN (
                SELECT k, $2::timestamptz + k * interval '5 minutes' AS ts
                FROM generate_series(0, {PER_DAY - 1}) AS k) s) x
            ORDER BY n, k"""
        # Two connections fill days side by side (one INSERT uses one core; the machine has
        # two): each day is still one transaction in device and time order.
        other = await asyncpg.connect(dsn)
        t = time.perf_counter()
        todo = iter(days)
        finished = [0]

        async def fill(c: asyncpg.Connection) -> None:
            if c is not conn:
                await c.execute(_FILL_DEV)
                await c.copy_records_to_table("fill_dev", records=_device_rows(devs))
            for day in todo:
                async with c.transaction():
                    await c.execute(sql, tenant, day_start_utc(day), now, now_text)
                finished[0] += 1
                if progress:
                    spent = time.perf_counter() - t
                    done = finished[0] * len(devs) * PER_DAY
                    print(f"SQL fill {day}: {done:,} rows, {done / spent:,.0f} rows/s",
                          flush=True)

        try:
            await asyncio.gather(fill(conn), fill(other))
        finally:
            await other.close()
        return time.perf_counter() - t
    finally:
        await conn.close()
