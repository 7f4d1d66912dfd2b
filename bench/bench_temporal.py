"""Issue 3 benchmark: aggregated temporal query over one year of 5-minute data.

For each engine: one entity whose attribute gets 105,120 instances (one year every 5 minutes),
loaded through the real write path in batches of temporal provision (POST
/temporal/entities/{id}/attrs, 1,000 instances per request, group commit). Then
``aggrMethods=avg,min,max&aggrPeriodDuration=P1D`` over the whole year is timed N times:

* **HTTP** — GET /temporal/entities/{id} through the ASGI app in process (parsing, auth,
  service, SQL, rendering, JSON), no socket;
* **service** — ``Temporal.retrieve`` directly (the use case without the HTTP edge);
* **SQL** — a hand-written ``GROUP BY`` day over the same table and index, same run: the
  floor any implementation on this schema pays.

Prints a Markdown table (median and p95 in ms, and HTTP/SQL). PostgreSQL gets VACUUM ANALYZE
after the load, as autovacuum would do shortly after a bulk load (index-only scans need the
visibility map).

    python bench/bench_temporal.py               # both engines
    python bench/bench_temporal.py --engine sqlite --runs 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from nakhon.app import create_app
from nakhon.config import load_settings
from nakhon.core.auth import OPEN
from nakhon.temporal.api import temporal_service
from nakhon.temporal.model import build_query

PG_ADMIN = os.environ.get("NAKHON_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
EID = "urn:ngsi-ld:AirQualityObserved:bench"
ATTR = "pm25"
ATTR_IRI = "https://uri.etsi.org/ngsi-ld/default-context/pm25"
START = datetime(2023, 1, 1, tzinfo=UTC)
TENANT = "bench"
HEADERS = {"NGSILD-Tenant": TENANT, "Content-Type": "application/json"}
QUERY = (f"/ngsi-ld/v1/temporal/entities/{EID}?options=aggregatedValues"
         "&aggrMethods=avg,min,max&aggrPeriodDuration=P1D"
         "&timerel=between&timeAt=2023-01-01T00:00:00Z&endTimeAt=2024-01-01T00:00:00Z")
BATCH = 1000


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def value(i: int) -> float:
    return round(25 + 15 * ((i * 37) % 101) / 101, 2)


async def load(client: httpx.AsyncClient, n: int) -> float:
    began = time.perf_counter()
    r = await client.post("/ngsi-ld/v1/entities", headers=HEADERS, json={
        "id": EID, "type": "AirQualityObserved",
        ATTR: {"type": "Property", "value": value(0), "observedAt": iso(START)}})
    assert r.status_code == 201, r.text
    for lo in range(1, n, BATCH):
        body = {ATTR: [{"type": "Property", "value": value(i),
                        "observedAt": iso(START + timedelta(minutes=5 * i))}
                       for i in range(lo, min(lo + BATCH, n))]}
        r = await client.post(f"/ngsi-ld/v1/temporal/entities/{EID}/attrs", headers=HEADERS,
                              json=body)
        assert r.status_code == 204, r.text
    return time.perf_counter() - began


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, float]:
    await fn()  # warm caches and connections
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def sql_baseline(engine: str, url: str) -> Callable[[], Awaitable[Any]]:
    origin_ms = int(START.timestamp() * 1000)
    if engine == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), check_same_thread=False)

        async def run_sqlite() -> Any:
            return conn.execute(
                "SELECT (ts_ms - ?) / 86400000 AS b, avg(num), min(num), max(num)"
                " FROM attr_history WHERE sid = (SELECT sid FROM history_series"
                "  WHERE tenant = ? AND entity_id = ? AND attr = ?)"
                " AND ts_ms >= ? AND ts_ms < ? GROUP BY b ORDER BY b",
                (origin_ms, TENANT, EID, ATTR_IRI, origin_ms, origin_ms + 365 * 86400000),
            ).fetchall()

        return run_sqlite

    state: dict[str, asyncpg.Connection] = {}

    async def run_pg() -> Any:
        if "conn" not in state:
            state["conn"] = await asyncpg.connect(url)
        return await state["conn"].fetch(
            "SELECT date_bin('1 day', ts, $1) AS b, avg(num), min(num), max(num)"
            " FROM attr_history WHERE sid = (SELECT sid FROM history_series"
            "  WHERE tenant = $2 AND entity_id = $3 AND attr = $4)"
            " AND ts >= $1 AND ts < $5 GROUP BY 1 ORDER BY 1",
            START, TENANT, EID, ATTR_IRI, START + timedelta(days=365),
        )

    return run_pg


async def bench(engine: str, url: str, n: int, runs: int) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="nakhon-bench-"))
    try:
        return await _bench(engine, url, n, runs, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # leave nothing behind


async def _bench(engine: str, url: str, n: int, runs: int, data_dir: Path) -> dict[str, Any]:
    settings = load_settings(env={}, database_url=url, data_dir=data_dir, auth="off",
                             log_level="warning", max_body_bytes=4_000_000)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            load_s = await load(client, n)
            if engine == "postgres":
                conn = await asyncpg.connect(url)
                await conn.execute("VACUUM ANALYZE attr_history")
                await conn.close()
            r = await client.get(QUERY, headers=HEADERS)
            assert r.status_code == 200, r.text
            days = r.json()[ATTR]["avg"]
            assert len(days) == 365 and sum(1 for d in days if d[0] is not None) == 365

            class _Req:
                pass

            _Req.app = app  # type: ignore[attr-defined]
            service = temporal_service(_Req())  # type: ignore[arg-type]
            tq = build_query(timerel="between", time_at="2023-01-01T00:00:00Z",
                             end_time_at="2024-01-01T00:00:00Z", timeproperty=None, last_n=None,
                             representation="aggregatedValues",
                             aggr_methods=["avg", "min", "max"], aggr_period="P1D")

            async def http() -> Any:
                return await client.get(QUERY, headers=HEADERS)

            async def svc() -> Any:
                return await service.retrieve(OPEN, TENANT, EID, tq, [ATTR_IRI])

            sql = sql_baseline(engine, url)
            return {
                "engine": engine,
                "n": n,
                "load": load_s,
                "sql": await timed(sql, runs),
                "service": await timed(svc, runs),
                "http": await timed(http, runs),
            }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--instances", type=int, default=105_120)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    results = []
    if args.engine in ("sqlite", "both"):
        folder = Path(tempfile.mkdtemp(prefix="nakhon-bench-"))
        try:
            results.append(
                await bench("sqlite", f"sqlite:///{folder / 'nakhon.db'}", args.instances,
                            args.runs))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if args.engine in ("postgres", "both"):
        name = f"nakhon_bench_temporal_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
            results.append(await bench("postgres", url, args.instances, args.runs))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    print(f"\nAggregated temporal query: 1 attribute, {args.instances:,} instances (5-minute data"
          f" over a year), avg,min,max per P1D; {args.runs} runs; times in ms (median / p95).\n")
    print("| Engine | Load (s) | Raw SQL GROUP BY | Service | HTTP (in-process ASGI)"
          " | HTTP / SQL |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        sql, svc, http = r["sql"], r["service"], r["http"]
        print(f"| {r['engine']} | {r['load']:.1f} | {sql[0]:.1f} / {sql[1]:.1f}"
              f" | {svc[0]:.1f} / {svc[1]:.1f} | {http[0]:.1f} / {http[1]:.1f}"
              f" | {http[0] / sql[0]:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
