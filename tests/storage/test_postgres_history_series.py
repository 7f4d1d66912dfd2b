"""PostgreSQL migration 0006: history keyed by an integer series id. A database built by
migrations 1–5, with history written the old way (tenant, entity_id, attr on every row), is
migrated and read back through the engine: same instances, same ids (hid), new ids after them;
and the writer's series cache keeps nothing from a rolled-back transaction."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest

from nakhon.storage.base import WriteOp
from nakhon.storage.history_base import (
    ENTITY_MARKER,
    AggregateQuery,
    Buckets,
    DeletedQuery,
    InstanceQuery,
    TimeWindow,
)
from nakhon.storage.postgres import PostgresStorage
from nakhon.storage.postgres import writer as writer_module
from nakhon.storage.postgres.schema import migrate, quote_ident
from nakhon.storage.postgres.testing import drop_schema, server_available, temporary_database

from .test_contract import create, ent, increment, prop

pytestmark = pytest.mark.postgres

TEMP = "https://example.org/temperature"
HUM = "https://example.org/humidity"
T0 = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
async def pg_dsn() -> AsyncIterator[str]:
    if not await server_available():
        pytest.skip("PostgreSQL is not reachable")
    async with temporary_database("nakhon_pgseries") as dsn:
        yield dsn


@pytest.fixture
async def schema(pg_dsn: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    await drop_schema(pg_dsn, name)


def _inst(value: object, minute: int, **extra: object) -> dict[str, object]:
    return {"type": "Property", "value": value,
            "observedAt": f"2024-05-01T10:{minute:02d}:00Z", **extra}


# (tenant, entity, attr, dataset, observed minute or None, instance)
_OLD_ROWS: list[tuple[str, str, str, str | None, int | None, dict[str, object]]] = [
    ("", "urn:m:1", TEMP, None, 0, _inst(20, 0)),
    ("", "urn:m:1", TEMP, None, 5, _inst(22, 5)),
    ("", "urn:m:1", TEMP, "urn:ds:b", 5, _inst(30, 5, datasetId="urn:ds:b")),
    ("", "urn:m:1", HUM, None, 0, _inst(55, 0)),
    ("city", "urn:m:1", TEMP, None, 0, _inst(-1, 0)),
    ("", "urn:m:2", TEMP, None, 1, _inst(18, 1)),
    ("", "urn:m:2", TEMP, None, 9, {"type": "Property", "value": "urn:ngsi-ld:null",
                                    "deletedAt": "2024-05-01T10:09:00Z"}),
    ("", "urn:m:2", ENTITY_MARKER, None, None,
     {"types": ["https://example.org/Sensor"], "createdAt": "2024-05-01T09:00:00Z",
      "deletedAt": "2024-05-01T10:09:00Z"}),
]


async def _build_version_5(dsn: str, schema: str) -> list[int]:
    """Migrations 1–5 only, then the old rows; their hid values, in ``_OLD_ROWS`` order."""
    conn = await asyncpg.connect(dsn)
    try:
        _, applied = await migrate(conn, schema, upto=5)
        assert applied == [1, 2, 3, 4, 5]
        await conn.execute(f"SET search_path TO {quote_ident(schema)}")
        # A gap in the hids, as deletions leave: the migration must keep them as they are.
        await conn.execute("SELECT nextval(pg_get_serial_sequence('attr_history', 'hid'))")
        hids: list[int] = []
        for tenant, eid, attr, ds, minute, inst in _OLD_ROWS:
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
        window = TimeWindow()
        got = await store.history_instances(
            InstanceQuery("", [("urn:m:1", TEMP), ("urn:m:1", HUM), ("urn:m:2", TEMP)],
                          window, limit=100))
        by_pair: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i in got:
            by_pair[(i.entity_id, i.attr)].append(i.hid)
        assert by_pair == {
            ("urn:m:1", TEMP): [hids[0], hids[1], hids[2]],
            ("urn:m:1", HUM): [hids[3]],
            ("urn:m:2", TEMP): [hids[5], hids[6]],
        }
        assert [i.instance["value"] for i in got][:3] == [20, 22, 30]
        city = await store.history_instances(
            InstanceQuery("city", [("urn:m:1", TEMP)], window, limit=10))
        assert [(i.hid, i.instance["value"]) for i in city] == [(hids[4], -1)]

        one = await store.history_get("", "urn:m:1", TEMP, hids[1])
        assert one is not None and one.instance["value"] == 22
        assert await store.history_get("city", "urn:m:1", TEMP, hids[1]) is None

        rows = await store.history_aggregate(AggregateQuery(
            "", [("urn:m:1", TEMP)], window, Buckets(T0), frozenset({"totalCount", "max"})))
        assert sorted((r.dataset_id or "", r.values["totalCount"], r.values["max"])
                      for r in rows) == [("", 2, 22.0), ("urn:ds:b", 1, 30.0)]
        assert await store.history_attrs("", ["urn:m:1", "urn:m:2"]) == {
            "urn:m:1": [HUM, TEMP], "urn:m:2": [TEMP]}
        deleted = await store.history_deleted(DeletedQuery(""))
        assert [(d.id, d.types) for d in deleted] == [("urn:m:2", ["https://example.org/Sensor"])]

        # New rows: through the writer, on the migrated series, with hids after the old ones.
        e = ent("urn:m:1", temperature=prop(25, observedAt="2024-05-01T10:10:00Z"))
        e.attrs[TEMP] = e.attrs.pop("temperature")
        await store.write([WriteOp("", e.id, create(e))])
        newest = await store.history_instances(
            InstanceQuery("", [("urn:m:1", TEMP)], window, limit=1, newest_first=True))
        assert newest[0].instance["value"] == 25 and newest[0].hid > max(hids)
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
        assert store.writer._sids == {}
        assert await store.pool.fetchval("SELECT count(*) FROM history_series") == 0
        monkeypatch.undo()
        await store.write([WriteOp("", "urn:r:1", create(ent("urn:r:1", n=prop(1))))])
        sid = await store.pool.fetchval("SELECT sid FROM history_series")
        assert store.writer._sids == {("", "urn:r:1", "n"): sid}
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
