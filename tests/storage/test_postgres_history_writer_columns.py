"""PostgreSQL migration 0009: ``ts``, ``num`` and ``deleted`` become plain columns the writer
fills, and ``hid`` is found through a BRIN index. A database at version 8 with history written
under the generated columns keeps every value; the engine then reads instances by id, replaces
one (its derived columns follow), and the KPI mark is the last hid drawn."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import orjson
import pytest

from nakhon.storage.postgres import PostgresStorage
from nakhon.storage.postgres.schema import migrate, quote_ident

pytestmark = pytest.mark.postgres

TEMP = "https://example.org/temperature"
T0 = datetime(2024, 5, 1, 10, tzinfo=UTC)
ROWS = [  # (observed minute or None, instance)
    (0, {"type": "Property", "value": 21.5}),
    (5, {"type": "Property", "value": 7}),
    (None, {"type": "Property", "value": True}),
    (10, {"type": "Property", "value": "ว่าง"}),
    (15, {"type": "Property", "value": "urn:ngsi-ld:null", "deletedAt": "2024-05-01T10:15:00Z"}),
]
COLUMNS = "hid, ts, num, deleted, observed_at, modified_at"


async def _build_version_8(dsn: str, schema: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        _, applied = await migrate(conn, schema, upto=8)
        assert applied[-1] == 8
        await conn.execute(f"SET search_path TO {quote_ident(schema)}")
        sid = await conn.fetchval(
            "INSERT INTO history_series (tenant, entity_id, attr)"
            " VALUES ('', 'urn:w:1', $1) RETURNING sid", TEMP)
        for minute, inst in ROWS:
            observed = T0.replace(minute=minute) if minute is not None else None
            await conn.execute(
                "INSERT INTO attr_history (sid, observed_at, modified_at, instance)"
                " VALUES ($1, $2, $3, $4::jsonb)",
                sid, observed, T0.replace(minute=30), orjson.dumps(inst).decode())
        return list(await conn.fetch(f"SELECT {COLUMNS} FROM attr_history ORDER BY hid"))
    finally:
        await conn.close()


async def test_migration_keeps_the_derived_values_and_indexes_hid_by_brin(
    pg_dsn: str, schema: str
) -> None:
    before = await _build_version_8(pg_dsn, schema)
    assert [r["num"] for r in before] == [21.5, 7.0, None, None, None]
    store = PostgresStorage(pg_dsn, schema=schema)
    await store.open()
    try:
        assert store.migrations_applied[0] == 9
        pool = store.pool
        after = list(await pool.fetch(f"SELECT {COLUMNS} FROM attr_history ORDER BY hid"))
        assert after == before
        generated = await pool.fetch(
            "SELECT attname, attgenerated::text, attnotnull FROM pg_attribute"
            " WHERE attrelid = 'attr_history'::regclass AND attname IN ('ts', 'num', 'deleted')"
            " ORDER BY attname")
        assert [tuple(r) for r in generated] == [
            ("deleted", "", True), ("num", "", False), ("ts", "", True)]
        method = await pool.fetchval(
            "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
            " WHERE c.relname = 'attr_history_hid'")
        assert method == "brin"

        hids = [r["hid"] for r in after]
        assert await store.history_mark() == hids[-1]
        got = await store.history_get("", "urn:w:1", TEMP, hids[1])
        assert got is not None and got.instance["value"] == 7
        # Replacing an instance rewrites its derived columns too: now a string, no observedAt.
        assert await store.history_replace(
            "", "urn:w:1", TEMP, hids[1], {"type": "Property", "value": "x"})
        row = await pool.fetchrow(f"SELECT {COLUMNS} FROM attr_history WHERE hid = $1", hids[1])
        assert (row["num"], row["deleted"], row["ts"]) == (None, False, row["modified_at"])
        assert await store.history_replace(
            "", "urn:w:1", TEMP, hids[2],
            {"type": "Property", "value": 3, "observedAt": "2024-05-01T11:00:00Z"})
        row = await pool.fetchrow(f"SELECT {COLUMNS} FROM attr_history WHERE hid = $1", hids[2])
        assert (row["num"], row["ts"]) == (3.0, datetime(2024, 5, 1, 11, tzinfo=UTC))
        assert await store.history_delete_instance("", "urn:w:1", TEMP, hids[0])
        assert await store.history_get("", "urn:w:1", TEMP, hids[0]) is None
    finally:
        await store.close()


async def test_the_mark_is_the_last_hid_drawn_even_when_rolled_back(
    pg_dsn: str, schema: str
) -> None:
    store = PostgresStorage(pg_dsn, schema=schema)
    await store.open()
    try:
        assert await store.history_mark() == 0
        # A hid drawn by a transaction that rolled back is below every later row: the mark
        # may pass it (nothing was written with it).
        await store.pool.execute("SELECT nextval('attr_history_hid_seq')")
        assert await store.history_mark() == 1
    finally:
        await store.close()
