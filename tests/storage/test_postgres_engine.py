"""PostgreSQL-specific behaviour: migrations, group commit, isolation of bad batches, geo rows,
history rows, several engine instances on one schema. (The contract is in test_contract.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from shapely.geometry import Point, box

from nakhon.broker.model import LOCATION, Entity
from nakhon.core.errors import AlreadyExists, BadRequestData
from nakhon.storage.base import EntityQuery, Outcome, WriteOp
from nakhon.storage.postgres import PostgresStorage
from nakhon.storage.postgres.schema import migrations

from .test_contract import create, delete, ent, geo, increment, located, prop, set_attr

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(pg_dsn: str, schema: str) -> AsyncIterator[PostgresStorage]:
    store = PostgresStorage(pg_dsn, schema=schema)
    await store.open()
    yield store
    await store.close()


async def test_migrations_apply_once_even_when_started_together(pg_dsn: str, schema: str) -> None:
    stores = [PostgresStorage(pg_dsn, schema=schema) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        applied = sorted(v for s in stores for v in s.migrations_applied)
        assert applied == [m.version for m in migrations()]
        rows = await stores[0].pool.fetch("SELECT version FROM schema_migrations")
        assert [r["version"] for r in rows] == [m.version for m in migrations()]
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    again = PostgresStorage(pg_dsn, schema=schema)
    await again.open()
    assert again.migrations_applied == []
    await again.close()


async def test_group_commit_batches_concurrent_callers(pg: PostgresStorage) -> None:
    await pg.write([WriteOp("", "urn:g:1", create(ent("urn:g:1", n=prop(0))))])
    before = pg.writer.batches
    await asyncio.gather(*(pg.write([WriteOp("", "urn:g:1", increment("n"))]) for _ in range(300)))
    batches = pg.writer.batches - before
    assert batches < 30, f"{batches} transactions for 300 concurrent writes"
    got = await pg.get("", "urn:g:1")
    assert got is not None and got.attrs["n"] == prop(300)


async def test_database_error_fails_only_the_guilty_caller(pg: PostgresStorage) -> None:
    # jsonb refuses U+0000: a server-side error the mutations cannot foresee.
    good = [pg.write([WriteOp("", f"urn:d:{i}", create(ent(f"urn:d:{i}")))]) for i in range(20)]
    bad = pg.write([WriteOp("", "urn:d:bad", create(ent("urn:d:bad", n=prop("a\u0000b"))))])
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    # The client's value, not the server: BadRequestData (a 400), not a raw database error.
    assert isinstance(results[-1], BadRequestData), results[-1]
    assert all(isinstance(r, list) and isinstance(r[0], Outcome) for r in results[:-1])
    assert (await pg.query("", EntityQuery(count=True, limit=0))).count == 20
    assert await pg.get("", "urn:d:bad") is None


async def test_a_refused_value_fails_only_its_own_operation_of_a_caller(
        pg: PostgresStorage) -> None:
    """One caller with many operations (an ingest batch, a batch upsert): a value PostgreSQL
    refuses fails that operation alone; the others commit (else ingest retried the whole batch
    forever)."""
    ops = [WriteOp("", f"urn:m:{i}", create(ent(f"urn:m:{i}", n=prop(i)))) for i in range(5)]
    ops.insert(2, WriteOp("", "urn:m:bad", create(ent("urn:m:bad", n=prop("x\u0000y")))))
    results = await pg.write(ops)
    assert isinstance(results[2], BadRequestData)
    assert [isinstance(r, Outcome) for r in results] == [True, True, False, True, True, True]
    assert (await pg.query("", EntityQuery(count=True, limit=0))).count == 5
    assert await pg.get("", "urn:m:bad") is None


async def test_unexpected_exception_in_mutation_is_isolated(pg: PostgresStorage) -> None:
    def broken(current: Entity | None, now: str) -> Outcome:
        raise KeyError("bug")

    results = await pg.write(
        [WriteOp("", "urn:k:1", broken), WriteOp("", "urn:k:2", create(ent("urn:k:2")))]
    )
    assert isinstance(results[0], KeyError) and isinstance(results[1], Outcome)
    assert await pg.get("", "urn:k:2") is not None


async def test_bad_geometry_fails_only_its_op(pg: PostgresStorage) -> None:
    broken = ent("urn:b:1")
    broken.attrs[LOCATION] = [{"type": "GeoProperty", "value": {"type": "Point"}}]
    results = await pg.write(
        [WriteOp("", "urn:b:1", create(broken)), WriteOp("", "urn:b:2", create(ent("urn:b:2")))]
    )
    assert isinstance(results[0], BadRequestData) and isinstance(results[1], Outcome)
    assert await pg.get("", "urn:b:1") is None


async def _geo_rows(pg: PostgresStorage) -> list[tuple[str, str, str]]:
    rows = await pg.pool.fetch(
        "SELECT e.id, g.attr, ST_AsText(g.geom) AS wkt FROM entity_geo g"
        " JOIN entities e ON e.pk = g.entity_pk ORDER BY 1, 2, 3"
    )
    return [(r["id"], r["attr"], r["wkt"]) for r in rows]


async def test_geo_rows_follow_every_geoproperty_instance(pg: PostgresStorage) -> None:
    e = located("urn:geo:1", Point(100.5, 13.7))
    second = {"type": "Point", "coordinates": [1, 2]}
    e.attrs["area"] = [
        *geo(box(100, 13, 101, 14)),
        {"type": "GeoProperty", "value": second, "datasetId": "urn:ds:2"},
    ]
    await pg.write([WriteOp("", e.id, create(e))])
    rows = await _geo_rows(pg)
    assert [(r[1], r[2]) for r in rows] == [
        ("area", "POINT(1 2)"),
        ("area", "POLYGON((101 13,101 14,100 14,100 13,101 13))"),
        (LOCATION, "POINT(100.5 13.7)"),
    ]
    await pg.write([WriteOp("", e.id, set_attr("area", prop("no longer geo")))])
    assert [(r[1], r[2]) for r in await _geo_rows(pg)] == [(LOCATION, "POINT(100.5 13.7)")]
    await pg.write([WriteOp("", e.id, delete)])
    assert await _geo_rows(pg) == []


async def test_history_rows_are_appended_in_the_transaction(pg: PostgresStorage) -> None:
    e = ent("urn:h:1", n=prop(0, observedAt="2024-05-01T10:00:00Z"))
    await pg.write([WriteOp("", e.id, create(e))])
    await pg.write([WriteOp("", e.id, increment("n")), WriteOp("", e.id, increment("n"))])
    rows = await pg.pool.fetch(
        "SELECT s.attr, h.observed_at, h.instance FROM attr_history h"
        " JOIN history_series s ON s.sid = h.sid"
        " WHERE s.tenant = '' AND s.entity_id = $1 ORDER BY h.modified_at, h.instance->>'value'",
        e.id,
    )
    assert [r["instance"]["value"] for r in rows] == [0, 1, 2]
    assert rows[0]["observed_at"].isoformat() == "2024-05-01T10:00:00+00:00"


async def test_two_engines_on_one_schema_lose_no_update(pg_dsn: str, schema: str) -> None:
    a = PostgresStorage(pg_dsn, schema=schema, write_batch_max=8)
    b = PostgresStorage(pg_dsn, schema=schema, write_batch_max=8)
    await a.open()
    await b.open()
    try:
        await a.write([WriteOp("", "urn:two:1", create(ent("urn:two:1", n=prop(0))))])
        calls = [
            s.write([WriteOp("", "urn:two:1", increment("n"))]) for _ in range(100) for s in (a, b)
        ]
        await asyncio.gather(*calls)
        got = await b.get("", "urn:two:1")
        assert got is not None and got.attrs["n"] == prop(200)
        # Both create the same new entity: one wins, the other sees it (retry on conflict).
        results = await asyncio.gather(
            *(s.write([WriteOp("", "urn:two:new", create(ent("urn:two:new")))]) for s in (a, b))
        )
        kinds = sorted(type(r[0]).__name__ for r in results)
        assert kinds == sorted([AlreadyExists.__name__, Outcome.__name__])
    finally:
        await a.close()
        await b.close()


async def test_invalid_id_pattern_is_bad_request(pg: PostgresStorage) -> None:
    with pytest.raises(BadRequestData):
        await pg.query("", EntityQuery(id_pattern="(unclosed"))


async def test_kv_and_writes_survive_reopen(pg_dsn: str, schema: str) -> None:
    s = PostgresStorage(pg_dsn, schema=schema)
    await s.open()
    await s.kv_put("ns", "k", {"v": 1})
    await s.write([WriteOp("city", "urn:r:1", create(ent("urn:r:1")))])
    await s.close()
    s2 = PostgresStorage(pg_dsn, schema=schema)
    await s2.open()
    try:
        assert await s2.kv_get("ns", "k") == {"v": 1}
        assert await s2.tenant_exists("city")
        assert await s2.get("city", "urn:r:1") is not None
    finally:
        await s2.close()


async def test_outcome_without_entity_is_refused(pg: PostgresStorage) -> None:
    await pg.write([WriteOp("", "urn:z:1", create(ent("urn:z:1")))])

    def lost(current: Entity | None, now: str) -> Outcome:
        return Outcome(None)  # neither deleted nor an entity: a bug, not a delete

    (r,) = await pg.write([WriteOp("", "urn:z:1", lost)])
    assert isinstance(r, ValueError)
    assert await pg.get("", "urn:z:1") is not None


async def test_kv_null_value(pg: PostgresStorage) -> None:
    await pg.kv_put("ns", "nothing", None)
    assert await pg.kv_list("ns") == {"nothing": None}
