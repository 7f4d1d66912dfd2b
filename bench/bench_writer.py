"""The group-commit write path alone, in process: no HTTP, no MQTT (SQLite or PostgreSQL).

Creates N entities (3 Properties + a location) with batch upserts, then applies rounds of
single-entity updates of 3 attributes with ``observedAt`` (the IoT ingest shape: upsert-update)
in groups of ``--batch`` operations, and prints operations per second for each phase, with
and without 10 matching subscriptions' outbox hook when ``--subs`` is given. Use it to measure
changes to the writers (``nakhon/storage/*/writer.py``), the mutations (``nakhon/broker/ops*``)
and the transaction hooks; ``--profile`` prints a cProfile of the update phase.

    python bench/bench_writer.py --engine sqlite --entities 10000 --batch 500
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
import uuid
from typing import Any

from nakhon.broker import ops
from nakhon.broker.model import Entity
from nakhon.storage.base import WriteOp

NS = "https://uri.etsi.org/ngsi-ld/default-context/"
PG_ADMIN = os.environ.get("NAKHON_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _entity(n: int, rnd: int) -> Entity:
    ts = f"2026-11-01T00:{rnd // 60 % 60:02d}:{rnd % 60:02d}Z"
    attrs: dict[str, Any] = {
        NS + "temperature": [{"type": "Property", "value": 20.0 + n % 10 + rnd / 10,
                              "observedAt": ts}],
        NS + "humidity": [{"type": "Property", "value": (n + rnd) % 100, "observedAt": ts}],
        NS + "status": [{"type": "Property", "value": "ok" if rnd % 2 else "warn",
                         "observedAt": ts}],
    }
    if rnd == 0:
        attrs["https://uri.etsi.org/ngsi-ld/location"] = [{
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [101.0 + n / 1e5, 13.6 + n / 1e5]},
        }]
    return Entity(f"urn:ngsi-ld:Device:{n}", [NS + "Device"], attrs)


async def _open(engine: str) -> tuple[Any, Any]:
    if engine == "sqlite":
        from nakhon.storage.sqlite.engine import SqliteStorage

        tmp = tempfile.mkdtemp()
        return SqliteStorage(os.path.join(tmp, "w.db")), None
    import asyncpg

    from nakhon.storage.postgres.engine import PostgresStorage

    name = "bench_w_" + uuid.uuid4().hex[:8]
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    dsn = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    return PostgresStorage(dsn), name


async def _drop(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


async def _phase(storage: Any, n: int, batch: int, rnd: int) -> float:
    start = time.perf_counter()
    for lo in range(0, n, batch):
        ops_ = [WriteOp("t", f"urn:ngsi-ld:Device:{i}",
                        ops.upsert_entity(_entity(i, rnd), mode="update"))
                for i in range(lo, min(n, lo + batch))]
        results = await storage.write(ops_)
        assert not any(isinstance(r, Exception) for r in results), results[:3]
    return n / (time.perf_counter() - start)


async def run(args: argparse.Namespace) -> None:
    storage, dbname = await _open(args.engine)
    await storage.open()
    try:
        create = await _phase(storage, args.entities, args.batch, 0)
        rates = []
        prof = cProfile.Profile() if args.profile else None
        for rnd in range(1, args.rounds + 1):
            if prof and rnd == args.rounds:
                prof.enable()
            rates.append(await _phase(storage, args.entities, args.batch, rnd))
        if prof:
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
        print(f"engine={args.engine} entities={args.entities} batch={args.batch}")
        print(f"create upserts/s: {create:,.0f}")
        print(f"update upserts/s: {max(rates):,.0f} (best of {args.rounds}); "
              f"per op {1e6 / max(rates):.0f} us")
    finally:
        await storage.close()
        if dbname:
            await _drop(dbname)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--entities", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
