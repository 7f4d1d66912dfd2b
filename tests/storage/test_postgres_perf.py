"""Query plans and speed of the PostgreSQL engine on a city-sized data set (120,000 entities).

The data is loaded with one INSERT … SELECT generate_series (not through the writer) so the
module stays quick; write throughput is measured separately in ``test_write_throughput``.
Timings are printed (run with ``-s``); asserted bounds are loose so slow CI machines pass, the
plan shapes are asserted exactly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from shapely.geometry import Point

from nakhon.broker.model import LOCATION
from nakhon.broker.query import GeoQuery
from nakhon.storage.base import EntityQuery, Outcome, WriteOp
from nakhon.storage.postgres import PostgresStorage
from nakhon.storage.postgres import query as sqlq
from nakhon.storage.postgres.testing import server_available, temporary_database

from .test_contract import create, ent, prop

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N = 120_000

_LOAD = """
INSERT INTO entities (tenant, id, type, types, created_at, modified_at, doc)
SELECT '', 'urn:ngsi-ld:P:' || lpad(i::text, 7, '0'),
       CASE WHEN i % 2 = 0 THEN 'Even' ELSE 'Odd' END,
       ARRAY[CASE WHEN i % 2 = 0 THEN 'Even' ELSE 'Odd' END],
       '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z',
       jsonb_build_object('attrs', jsonb_build_object(
           'n', jsonb_build_array(jsonb_build_object('type', 'Property', 'value', i)),
           'name', jsonb_build_array(jsonb_build_object('type', 'Property',
                                                        'value', 'สถานี ' || i))))
FROM generate_series(1, $1::int) AS i
"""
_LOAD_GEO = """
INSERT INTO entity_geo (entity_pk, attr, geom)
SELECT pk, $1, ST_SetSRID(ST_MakePoint(100.3 + (pk % 997) * 0.0006, 13.5 + (pk % 991) * 0.0006),
                          4326)
FROM entities
"""


@pytest.fixture(scope="module")
async def big() -> AsyncIterator[PostgresStorage]:
    if not await server_available():
        pytest.skip("PostgreSQL is not reachable")
    async with temporary_database("nakhon_perf") as dsn:
        store = PostgresStorage(dsn, schema="perf")
        await store.open()
        await store.pool.execute(_LOAD, N)
        await store.pool.execute(_LOAD_GEO, LOCATION)
        # Autovacuum would do this eventually; index-only scans need the visibility map.
        await store.pool.execute("VACUUM ANALYZE entities")
        await store.pool.execute("VACUUM ANALYZE entity_geo")
        yield store
        await store.close()


async def _explain(store: PostgresStorage, compiled: sqlq.Compiled) -> str:
    rows = await store.pool.fetch("EXPLAIN (ANALYZE, BUFFERS) " + compiled.sql, *compiled.params)
    return "\n".join(r[0] for r in rows)


async def _timed(store: PostgresStorage, q: EntityQuery, repeat: int = 5) -> tuple[float, Any]:
    best, page = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        page = await store.query("", q)
        best = min(best, time.perf_counter() - t0)
    return best, page


async def test_deep_paging_is_index_only(big: PostgresStorage) -> None:
    q = EntityQuery(limit=20, offset=100_000)
    seconds, page = await _timed(big, q)
    assert [e.id for e in page.entities] == [
        f"urn:ngsi-ld:P:{i:07d}" for i in range(100_001, 100_021)
    ]
    plan = await _explain(big, sqlq.page_sql("", q))
    print(f"\noffset 100000: {seconds * 1000:.1f} ms\n{plan}")
    assert "Index Only Scan" in plan
    # The naive form (heap fetch for every skipped row) for comparison in the printout.
    naive = sqlq.Compiled(
        "SELECT e.id, e.doc FROM entities e WHERE e.tenant = $1 ORDER BY e.id LIMIT 20"
        " OFFSET 100000",
        [""],
    )
    t0 = time.perf_counter()
    await big.pool.fetch(naive.sql, *naive.params)
    print(f"naive LIMIT/OFFSET without deferred join: {(time.perf_counter() - t0) * 1000:.1f} ms")
    assert seconds < 0.5


async def test_deep_paging_with_a_type_filter(big: PostgresStorage) -> None:
    try:
        from nakhon.broker.query.typesel import parse_type_selection
    except ImportError:
        pytest.skip("type selection parser not available yet")
    q = EntityQuery(type_expr=parse_type_selection("Even", str), limit=20, offset=50_000)
    seconds, page = await _timed(big, q)
    assert [e.id for e in page.entities] == [
        f"urn:ngsi-ld:P:{i:07d}" for i in range(100_002, 100_042, 2)
    ]
    plan = await _explain(big, sqlq.page_sql("", q))
    print(f"\ntype=Even offset 50000: {seconds * 1000:.1f} ms\n{plan}")
    assert seconds < 0.5


async def test_count_and_attrs_filter(big: PostgresStorage) -> None:
    seconds, page = await _timed(big, EntityQuery(limit=5, count=True, attrs=["name"]), 3)
    assert page.count == N
    print(f"\nattrs filter + count over {N}: {seconds * 1000:.1f} ms")


async def test_near_query_uses_the_geography_index(big: PostgresStorage) -> None:
    gq = GeoQuery(Point(100.45, 13.65), "near", max_distance=300.0)
    q = EntityQuery(geo=gq, limit=1000, count=True)
    seconds, page = await _timed(big, q)
    plan = await _explain(big, sqlq.page_sql("", q))
    print(f"\nnear 300 m: {page.count} hits, {seconds * 1000:.1f} ms\n{plan}")
    assert "entity_geo_geog" in plan
    assert 0 < page.count < N


async def test_within_query_uses_the_geometry_index(big: PostgresStorage) -> None:
    from shapely.geometry import box

    gq = GeoQuery(box(100.40, 13.60, 100.42, 13.62), "within")
    q = EntityQuery(geo=gq, limit=20, count=True)
    seconds, page = await _timed(big, q)
    plan = await _explain(big, sqlq.page_sql("", q))
    print(f"\nwithin box: {page.count} hits, {seconds * 1000:.1f} ms\n{plan}")
    assert "entity_geo_geom" in plan


async def test_introspection_speed(big: PostgresStorage) -> None:
    t0 = time.perf_counter()
    types = await big.list_types("")
    t1 = time.perf_counter()
    attrs = await big.list_attributes("")
    t2 = time.perf_counter()
    print(f"\nlist_types {(t1 - t0) * 1000:.0f} ms, list_attributes {(t2 - t1) * 1000:.0f} ms")
    assert {t.type: t.count for t in types} == {"Even": N // 2, "Odd": N // 2}
    assert {a.name: a.count for a in attrs} == {"n": N, "name": N}
    assert t2 - t0 < 5


async def test_write_throughput() -> None:
    """Group-commit writer vs a raw executemany insert of the same rows (printed)."""
    if not await server_available():
        pytest.skip("PostgreSQL is not reachable")
    async with temporary_database("nakhon_bench") as dsn:
        store = PostgresStorage(dsn, schema=f"b_{uuid.uuid4().hex[:6]}")
        await store.open()
        try:
            await _bench(store)
        finally:
            await store.close()


async def _bench(store: PostgresStorage) -> None:
    n = 20_000
    entities = [
        ent(
            f"urn:ngsi-ld:Sensor:{i:06d}",
            "Sensor",
            temp=prop(20 + i % 10, unitCode="CEL"),
            name=prop(f"เซนเซอร์ {i}"),
        )
        for i in range(n)
    ]
    sem = asyncio.Semaphore(200)  # 200 concurrent callers of one op each, like HTTP requests

    async def one(e: Any) -> None:
        async with sem:
            (r,) = await store.write([WriteOp("", e.id, create(e))])
            assert isinstance(r, Outcome)

    t0 = time.perf_counter()
    batches0 = store.writer.batches
    await asyncio.gather(*(one(e) for e in entities))
    single = n / (time.perf_counter() - t0)
    n_batches = store.writer.batches - batches0

    t0 = time.perf_counter()
    for i in range(0, n, 500):  # callers sending batches of 500 (batch API, ingest)
        await store.write([WriteOp("t2", e.id, create(e)) for e in entities[i : i + 500]])
    bulk = n / (time.perf_counter() - t0)

    # Raw executemany into an identical table (same indexes), no reads, no history.
    async with store.pool.acquire() as conn:
        await conn.execute("CREATE TABLE raw (LIKE entities INCLUDING ALL)")
        rows = [("", e.id, "Sensor", ["Sensor"], None, "t", "t", e.doc()) for e in entities]
        t0 = time.perf_counter()
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO raw (tenant, id, type, types, scopes, created_at, modified_at, doc)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                rows,
            )
        raw = n / (time.perf_counter() - t0)
    print(
        f"\nwriter, 200 concurrent single-op callers: {single:,.0f} ops/s"
        f" ({n_batches} transactions, {n / max(n_batches, 1):.0f} ops each)"
        f"\nwriter, callers of 500 ops: {bulk:,.0f} ops/s"
        f"\nraw executemany insert, one transaction: {raw:,.0f} rows/s"
        f"\nratios: single/raw {single / raw:.2f}, batch/raw {bulk / raw:.2f}"
    )
    assert single > 500 and bulk > 500
