"""PostgreSQL migration 0006: history keyed by an integer series id. A database built by
migrations 1–5, with history written the old way (tenant, entity_id, attr on every row), is
migrated and read back through the engine: same instances, same ids (hid), new ids after them;
and the writer's series cache keeps nothing from a rolled-back transaction."""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from nakhon.storage.base import WriteOp
from nakhon.storage.history_base import (
    InstanceQuery,
    TimeWindow,
)
from nakhon.storage.postgres import PostgresStorage
from nakhon.storage.postgres import writer as writer_module
from nakhon.storage.postgres.schema import migrate, quote_ident

from .history_series_checks import OLD_ROWS, T0, check_migrated
from .test_contract import create, ent, increment, prop

pytestmark = pytest.mark.postgres

async def _build_version_5(dsn: str, schema: str) -> list[int]:
    """Migrations 1–5 only, then the old rows; their hid values, in ``OLD_ROWS`` order."""
    conn = await asyncpg.connect(dsn)
    try:
        _, applied = await migrate(conn, schema, upto=5)
        assert applied == [1, 2, 3, 4, 5]
        await conn.execute(f"SET search_path TO {quote_ident(schema)}")
        # A gap in the hids, as deletions leave: the migration must keep them as they are.
        await conn.execute("SELECT nextval(pg_get_serial_sequence('attr_history', 'hid'))")
        hids: list[int] = []
        for tenant, eid, attr, ds, minute, inst in OLD_ROWS:
            observed = T0.replace(hour=10, minute=minute) if minute is not None else None
            modified = T0.replace(hour=10, minute=9)
            hids.append(await conn.fetchval(
                "INSERT INTO attr_history (tenant, entity_id, attr, dataset_id, observed_at,"
                " modified_at, instance) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)"
                " RETURNING hid",
                tenant, eid, attr, ds, observed, modified, orjson.dumps(inst).decode()))
        return hids
    finally:
        await conn.close()


async def test_migration_keeps_history_and_instance_ids(pg_dsn: str, schema: str) -> None:
    hids = await _build_version_5(pg_dsn, schema)
    store = PostgresStorage(pg_dsn, schema=schema)
    await store.open()
    try:
        assert store.migrations_applied[0] == 6
        await check_migrated(store, hids)
        series = await store.pool.fetchval(
            "SELECT count(*) FROM history_series WHERE tenant = '' AND entity_id = 'urn:m:1'")
        assert series == 2
    finally:
        await store.close()


async def test_series_learnt_in_a_rolled_back_transaction_are_not_cached(
    pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostgresStorage(pg_dsn, schema=schema)
    await store.open()
    try:
        # The history COPY (after the series were created) fails: the transaction rolls back,
        # series included, so the writer must not keep their ids (no foreign key would catch
        # rows written later with them).
        monkeypatch.setattr(writer_module, "HISTORY_COLUMNS", ("sid", "no_such_column"))
        with pytest.raises(asyncpg.PostgresError):
            await store.write([WriteOp("", "urn:r:1", create(ent("urn:r:1", n=prop(1))))])
        assert store.writer._sids.known == {}
        assert await store.pool.fetchval("SELECT count(*) FROM history_series") == 0
        monkeypatch.undo()
        await store.write([WriteOp("", "urn:r:1", create(ent("urn:r:1", n=prop(1))))])
        sid = await store.pool.fetchval("SELECT sid FROM history_series")
        assert store.writer._sids.known == {("", "urn:r:1", "n"): sid}
        # Another engine on the same schema (a cold cache) appends to the same series.
        other = PostgresStorage(pg_dsn, schema=schema)
        await other.open()
        try:
            await other.write([WriteOp("", "urn:r:3", create(ent("urn:r:3", n=prop(3)))),
                               WriteOp("", "urn:r:1", increment("n"))])
        finally:
            await other.close()
        got = await store.history_instances(
            InstanceQuery("", [("urn:r:1", "n")], TimeWindow(prop="modifiedAt"), limit=10))
        assert [i.instance["value"] for i in got] == [1, 2]
        assert await store.pool.fetchval("SELECT count(*) FROM history_series") == 2
    finally:
        await store.close()
