"""Notification benchmark: throughput to a local HTTP receiver, and write rate with subscriptions.

Run: ``python bench/bench_notifications.py [--engine sqlite|postgres] [--changes N]``.

* **Changes delivered/s** — N entity changes are committed while the dispatcher delivers them
  to a real HTTP receiver running in a *separate process* (it takes the second core); the clock
  runs from the first write until the receiver has counted every change (the entities in the
  notifications' ``data``: a notification carries up to ``--max-entities`` changes); the
  notifications/s are shown beside. With 1 subscription (one in-order stream) and with 10 (ten
  streams in parallel, each change notified 10 times).
* **Write rate** — single-operation writes (attribute updates) from 64 concurrent callers, the
  group-commit pattern of HTTP ingest, through the storage engine with the subscriptions hook
  installed: with no subscription, then with 10 active subscriptions that all match every write
  while the dispatcher delivers at the same time in the same process. The two alternate for
  ``--rounds`` rounds (the machine's other load then weighs on both alike); each round gives a
  ratio, and the changes (and notifications) the receiver got during the loaded window are shown
  too (the rest wait in the outbox: while writes queue, delivery yields to them for up to
  ``--max-delay`` seconds).

Prints a Markdown table. The load generator runs in the measured process (no HTTP in front).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nakhon.broker import ops
from nakhon.broker.jsonld import ContextResolver
from nakhon.broker.model import NGSI_LD, Entity
from nakhon.core.auth import SYSTEM, Access
from nakhon.storage import storage_for
from nakhon.storage.base import WriteOp
from nakhon.subscriptions.service import SubscriptionService

VOCAB = NGSI_LD + "default-context/"
TEMP = VOCAB + "temperature"

RECEIVER = r'''
import asyncio, sys
import orjson
count = 0  # notifications
entities = 0  # entities in them (data elements)
async def handle(reader, writer):
    global count, entities
    buf = b""
    while True:
        data = await reader.read(65536)
        if not data:
            break
        buf += data
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = buf[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            if len(buf) < head_end + 4 + length:
                break
            body, buf = buf[head_end + 4:head_end + 4 + length], buf[head_end + 4 + length:]
            if head.startswith("GET /count"):
                body = b"%d %d" % (count, entities)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
            else:
                count += 1
                entities += len(orjson.loads(body)["data"])
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
'''


_RUNS = itertools.count(1)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def entity(i: int) -> Entity:
    inst = {"type": "Property", "value": i}
    return Entity(f"urn:ngsi-ld:Sensor:{i}", [VOCAB + "Sensor"], {TEMP: [inst]})


MAX_DELAY = [2.0]  # NAKHON_NOTIFICATION_MAX_DELAY for this run (--max-delay)
MAX_ENTITIES = [100]  # NAKHON_NOTIFICATION_MAX_ENTITIES for this run (--max-entities)


async def open_service(url: str) -> tuple[Any, SubscriptionService]:
    storage: Any
    if url.startswith("postgresql"):
        from nakhon.storage.postgres import PostgresStorage

        # A schema of its own: the benchmark never touches a real deployment's tables.
        storage = PostgresStorage(url, schema="nakhon_bench_notifications")
    else:
        # A fresh file per measurement, as PostgreSQL gets a fresh schema: a measurement must
        # not inherit the previous one's subscriptions (their backlog would be delivered during
        # it) nor its history (a growing table slows every later write).
        storage = storage_for(url.replace(".db", f"-{next(_RUNS)}.db"))
    await storage.open()
    resolver = ContextResolver(timeout=5, max_bytes=1 << 20, ttl=3600)
    svc = SubscriptionService(storage, Access(storage, enabled=False, anonymous_read=True),
                              resolver, max_delay=MAX_DELAY[0], max_entities=MAX_ENTITIES[0])
    await svc.open()
    return storage, svc


async def close_storage(storage: Any) -> None:
    """Close, and drop the measurement's SQLite file or PostgreSQL schema (nothing is left
    behind)."""
    await storage.close()
    path = getattr(storage, "path", None)
    if isinstance(path, str):
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
    schema = getattr(storage, "schema", None)
    if schema == "nakhon_bench_notifications":
        from nakhon.storage.postgres.testing import drop_schema

        await drop_schema(storage.dsn, schema)


async def subscribe(svc: SubscriptionService, tenant: str, uri: str, n: int) -> None:
    from nakhon.broker.jsonld import CORE_TERM_MAP

    for _ in range(n):
        body = {"type": "Subscription", "entities": [{"type": "Sensor"}],
                "notification": {"endpoint": {"uri": uri}}}
        await svc.create(SYSTEM, tenant, body, CORE_TERM_MAP, None)


async def received(client: httpx.AsyncClient) -> tuple[int, int]:
    """(notifications, entities) the receiver has counted so far."""
    notes, ents = (await client.get("/count")).text.split()
    return int(notes), int(ents)


async def throughput(url: str, port: int, subs: int, changes: int) -> tuple[float, float]:
    """Changes delivered/s (entities received) and notifications/s."""
    storage, svc = await open_service(url)
    tenant = f"n{subs}x{os.getpid()}"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        start_notes, start_count = await received(client)
        await subscribe(svc, tenant, f"http://127.0.0.1:{port}/notify", subs)
        t0 = time.perf_counter()
        for start in range(0, changes, 500):
            await storage.write([WriteOp(tenant, entity(i).id, ops.create_entity(entity(i)))
                                 for i in range(start, min(changes, start + 500))])
        want = start_count + changes * subs
        # The receiver is another process: poll its counter (an entity lost fails the run).
        while (got := await received(client))[1] < want:
            if time.perf_counter() - t0 > 300:
                raise SystemExit(f"only {got[1] - start_count} of {want - start_count} changes"
                                 " arrived within 300 s")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - t0
    await svc.close()
    await close_storage(storage)
    return changes * subs / elapsed, (got[0] - start_notes) / elapsed


async def write_rate(url: str, port: int, subs: int,
                     seconds: float) -> tuple[float, float, float]:
    """Writes/s over ``seconds``, and changes/s and notifications/s the receiver got in that
    window."""
    storage, svc = await open_service(url)
    tenant = f"w{subs}x{os.getpid()}"
    await storage.write([WriteOp(tenant, entity(i).id, ops.create_entity(entity(i)))
                         for i in range(1000)])
    await subscribe(svc, tenant, f"http://127.0.0.1:{port}/notify", subs)
    done = 0
    stop = time.perf_counter() + seconds

    async def caller(k: int) -> None:
        nonlocal done
        i = k
        while time.perf_counter() < stop:
            e = entity(i % 1000)
            e.attrs[TEMP] = [{"type": "Property", "value": i}]
            await storage.write([WriteOp(tenant, e.id, ops.update_attrs(e.attrs))])
            done += 1
            i += 64

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        before = await received(client)
        t0 = time.perf_counter()
        await asyncio.gather(*(caller(k) for k in range(64)))
        elapsed = time.perf_counter() - t0
        after = await received(client)
    await svc.close()
    await close_storage(storage)
    return (done / elapsed, (after[1] - before[1]) / elapsed,
            (after[0] - before[0]) / elapsed)


async def measure(url: str, port: int, args: argparse.Namespace) -> None:
    one = await throughput(url, port, 1, args.changes)
    ten = await throughput(url, port, 10, args.changes // 2)
    # The baseline and the loaded case alternate, round after round and in ABBA order (odd
    # rounds measure the baseline first, even rounds second), so that whatever else the machine
    # does weighs on both alike and a drift cancels out; each round gives one ratio.
    rounds: list[tuple[float, float, float, float]] = []
    for n in range(args.rounds):
        if n % 2 == 0:
            base, _, _ = await write_rate(url, port, 0, args.seconds)
            loaded, sent, notes = await write_rate(url, port, 10, args.seconds)
        else:
            loaded, sent, notes = await write_rate(url, port, 10, args.seconds)
            base, _, _ = await write_rate(url, port, 0, args.seconds)
        rounds.append((base, loaded, sent, notes))
    ratios = sorted(loaded / base for base, loaded, _, _ in rounds)
    median = ratios[len(ratios) // 2]
    print(f"\n| {args.engine}, at most {MAX_ENTITIES[0]} entities per notification | figure |"
          " target |")
    print("| --- | ---: | --- |")
    for subs, (changes, notes) in ((1, one), (10, ten)):
        print(f"| changes delivered/s, {subs} subscription{'s' if subs > 1 else ''}"
              f" (notifications/s) | {changes:,.0f} ({notes:,.0f}) | ≥ 2,000 |")
    for n, (base, loaded, sent, notes) in enumerate(rounds, 1):
        print(f"| round {n}: writes/s none → 10 matching subscriptions (changes/s delivered"
              f" meanwhile, in notifications/s) | {base:,.0f} → {loaded:,.0f} ({sent:,.0f} in"
              f" {notes:,.0f}) | {loaded / base:.0%} |")
    print(f"| write rate with 10 vs none, median of {len(rounds)} (range) | {median:.0%}"
          f" ({ratios[0]:.0%}–{ratios[-1]:.0%}) | ≥ 80% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--changes", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--max-delay", type=float, default=2.0,
                        help="NAKHON_NOTIFICATION_MAX_DELAY: how long writes-first may hold "
                             "a notification back (the platform's default: 2 s)")
    parser.add_argument("--max-entities", type=int, default=100,
                        help="NAKHON_NOTIFICATION_MAX_ENTITIES: most entities per notification "
                             "(the platform's default: 100; 1 = one change per notification)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of the write-rate measurement")
    args = parser.parse_args()
    MAX_DELAY[0] = args.max_delay
    MAX_ENTITIES[0] = args.max_entities
    tmp = tempfile.mkdtemp(prefix="nakhon-bench-")
    if args.engine == "sqlite":
        url = f"sqlite:///{tmp}/bench.db"
    else:
        url = os.environ.get("NAKHON_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)],
                                stdout=subprocess.PIPE)
    assert receiver.stdout is not None
    receiver.stdout.readline()
    try:
        asyncio.run(measure(url, port, args))
    finally:
        receiver.kill()
        shutil.rmtree(tmp, ignore_errors=True)  # the SQLite files are gone already; the folder too


if __name__ == "__main__":
    main()
