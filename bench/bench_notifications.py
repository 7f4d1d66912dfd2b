"""Notification benchmark: throughput to a local HTTP receiver, and write rate with subscriptions.

Run: ``python bench/bench_notifications.py [--engine sqlite|postgres] [--changes N]
[--notify-mode process|inline]``.

``--notify-mode process`` (the default; ``NAKHON_NOTIFY_MODE=process``, the high-rate
deployment): the measured process only writes the outbox, and a real ``nakhon notify`` child
process on the same database delivers (started once the measurement's subscriptions exist;
it must say it delivers before the clock starts). ``inline``: delivery in the measured process
(``NAKHON_NOTIFY_MODE=inline``).

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
  ``--max-delay`` seconds); then the backlog drains before the next measurement, and the
  changes/s delivered from the end of the window until the receiver has every change are shown
  (in ``process`` mode the child process keeps delivering meanwhile; in ``inline`` mode the
  measured process does).

Prints a Markdown table. The load generator runs in the measured process (no HTTP in front).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
MODE = ["process"]  # --notify-mode
CHILDREN: list[asyncio.subprocess.Process] = []  # stopped at the end, whatever happened


class Measurement:
    """One measurement's storage and subscription service (role ``writer`` in process mode)
    and, in process mode, its ``nakhon notify`` child on the same database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.storage: Any = None
        self.svc: SubscriptionService | None = None
        self.child: asyncio.subprocess.Process | None = None
        self._database: Any = None  # PostgreSQL, process mode: a database of its own

    async def open(self) -> tuple[Any, SubscriptionService]:
        url = self.url
        if MODE[0] == "process" and url.startswith("postgresql"):
            # The child opens the database by URL (no schema option): a fresh database per
            # measurement instead of a fresh schema.
            from nakhon.storage.postgres.testing import temporary_database

            self._database = temporary_database("nakhon_bench_notify")
            url = self.url = await self._database.__aenter__()
        self.storage, self.svc = await open_service(url)
        return self.storage, self.svc

    async def start_delivery(self) -> None:
        """Process mode: start ``nakhon notify`` and wait until it says it delivers."""
        if MODE[0] != "process":
            return
        url = self.url if self.url.startswith("postgresql") else f"sqlite:///{self.storage.path}"
        env = {**os.environ, "NAKHON_LOG_LEVEL": "error",  # its stdout is read once
               "NAKHON_NOTIFICATION_MAX_DELAY": str(MAX_DELAY[0]),
               "NAKHON_NOTIFICATION_MAX_ENTITIES": str(MAX_ENTITIES[0]),
               "NAKHON_NOTIFY_PARENT": str(os.getpid())}  # it stops if this run dies
        self.child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nakhon", "notify", "--database-url", url, env=env,
            stdout=asyncio.subprocess.PIPE)
        CHILDREN.append(self.child)
        assert self.child.stdout is not None
        line = await self.child.stdout.readline()
        if not line.startswith(b"nakhon notify: delivering"):
            raise SystemExit(f"nakhon notify did not start: {line!r}")

    async def close(self) -> None:
        if self.child is not None:
            self.child.terminate()
            await asyncio.wait_for(self.child.wait(), 30)
        assert self.svc is not None
        await self.svc.close()
        await close_storage(self.storage)
        if self._database is not None:
            await self._database.__aexit__(None, None, None)


async def drained(client: httpx.AsyncClient, want: int, t0: float) -> tuple[int, int]:
    """Wait until the receiver counted ``want`` entities; (notifications, entities)."""
    while (got := await received(client))[1] < want:
        if time.perf_counter() - t0 > 300:
            raise SystemExit(f"only {got[1]} of {want} changes arrived within 300 s")
        await asyncio.sleep(0.02)
    return got


async def open_service(url: str) -> tuple[Any, SubscriptionService]:
    storage: Any
    if url.startswith("postgresql") and MODE[0] == "process":
        from nakhon.storage.postgres import PostgresStorage

        storage = PostgresStorage(url)  # a fresh database (Measurement.open)
    elif url.startswith("postgresql"):
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
                              resolver, max_delay=MAX_DELAY[0], max_entities=MAX_ENTITIES[0],
                              role="writer" if MODE[0] == "process" else "inline")
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
    run = Measurement(url)
    storage, svc = await run.open()
    tenant = f"n{subs}x{os.getpid()}"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        start_notes, start_count = await received(client)
        await subscribe(svc, tenant, f"http://127.0.0.1:{port}/notify", subs)
        await run.start_delivery()
        t0 = time.perf_counter()
        for start in range(0, changes, 500):
            await storage.write([WriteOp(tenant, entity(i).id, ops.create_entity(entity(i)))
                                 for i in range(start, min(changes, start + 500))])
        # The receiver is another process: poll its counter (an entity lost fails the run).
        got = await drained(client, start_count + changes * subs, t0)
        elapsed = time.perf_counter() - t0
    await run.close()
    return changes * subs / elapsed, (got[0] - start_notes) / elapsed


async def write_rate(url: str, port: int, subs: int,
                     seconds: float) -> tuple[float, float, float, float, float]:
    """Writes/s over ``seconds``; changes/s and notifications/s the receiver got in that
    window; changes/s delivered after it until the receiver had every change; and the
    measured process's CPU per write in the window, in µs (all its threads: less noisy than
    the rate on a shared machine, but blind to PostgreSQL's backends)."""
    run = Measurement(url)
    storage, svc = await run.open()
    tenant = f"w{subs}x{os.getpid()}"
    await storage.write([WriteOp(tenant, entity(i).id, ops.create_entity(entity(i)))
                         for i in range(1000)])
    await subscribe(svc, tenant, f"http://127.0.0.1:{port}/notify", subs)
    if subs:
        await run.start_delivery()
    done = 0
    stop = time.perf_counter() + seconds

    async def caller(k: int) -> None:
        nonlocal done
        i = k
        while time.perf_counter() < stop:
            e = entity(i % 1000)
            # Never the value the entity was created with: every write is a change.
            e.attrs[TEMP] = [{"type": "Property", "value": -1 - i}]
            outcome = (await storage.write([WriteOp(tenant, e.id,
                                                   ops.update_attrs(e.attrs))]))[0]
            if isinstance(outcome, Exception):  # a failed write is no write (and no change)
                raise SystemExit(f"a write failed: {outcome!r}")
            done += 1
            i += 64

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        before = await received(client)
        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(caller(k) for k in range(64)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        after = await received(client)
        t1 = time.perf_counter()
        final = await drained(client, before[1] + done * subs, t1)
        drain = time.perf_counter() - t1
    await run.close()
    return (done / elapsed, (after[1] - before[1]) / elapsed,
            (after[0] - before[0]) / elapsed, (final[1] - after[1]) / drain if drain else 0.0,
            cpu / done * 1e6)


async def measure(url: str, port: int, args: argparse.Namespace) -> None:
    one = await throughput(url, port, 1, args.changes)
    ten = await throughput(url, port, 10, args.changes // 2)
    # The baseline and the loaded case alternate, round after round and in ABBA order (odd
    # rounds measure the baseline first, even rounds second), so that whatever else the machine
    # does weighs on both alike and a drift cancels out; each round gives one ratio.
    rounds: list[tuple[float, float, float, float, float]] = []
    cpus: list[tuple[float, float]] = []  # µs of CPU per write: none, 10 subscriptions
    for n in range(args.rounds):
        if n % 2 == 0:
            base, _, _, _, base_cpu = await write_rate(url, port, 0, args.seconds)
            loaded, sent, notes, after, cpu = await write_rate(url, port, 10, args.seconds)
        else:
            loaded, sent, notes, after, cpu = await write_rate(url, port, 10, args.seconds)
            base, _, _, _, base_cpu = await write_rate(url, port, 0, args.seconds)
        rounds.append((base, loaded, sent, notes, after))
        cpus.append((base_cpu, cpu))
    ratios = sorted(r[1] / r[0] for r in rounds)
    median = ratios[len(ratios) // 2]
    print(f"\n| {args.engine}, notify mode {MODE[0]}, at most {MAX_ENTITIES[0]} entities per"
          " notification | figure | target |")
    print("| --- | ---: | --- |")
    for subs, (changes, notes) in ((1, one), (10, ten)):
        print(f"| changes delivered/s, {subs} subscription{'s' if subs > 1 else ''}"
              f" (notifications/s) | {changes:,.0f} ({notes:,.0f}) | ≥ 2,000 |")
    for n, (base, loaded, sent, notes, after) in enumerate(rounds, 1):
        print(f"| round {n}: writes/s none → 10 matching subscriptions (changes/s delivered"
              f" meanwhile, in notifications/s; changes/s after the window) | {base:,.0f} →"
              f" {loaded:,.0f} ({sent:,.0f} in {notes:,.0f}; {after:,.0f}) |"
              f" {loaded / base:.0%} |")
    print(f"| write rate with 10 vs none, median of {len(rounds)} (range) | {median:.0%}"
          f" ({ratios[0]:.0%}–{ratios[-1]:.0%}) | ≥ 80% |")
    base_cpus = sorted(c[0] for c in cpus)
    loaded_cpus = sorted(c[1] for c in cpus)
    print(f"| measured process's CPU per write, none → 10 subscriptions, µs (median of"
          f" {len(cpus)}; ranges {base_cpus[0]:.0f}–{base_cpus[-1]:.0f} →"
          f" {loaded_cpus[0]:.0f}–{loaded_cpus[-1]:.0f}) | {base_cpus[len(cpus) // 2]:.0f} →"
          f" {loaded_cpus[len(cpus) // 2]:.0f} | |")


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
    parser.add_argument("--notify-mode", choices=["process", "inline"], default="process",
                        help="NAKHON_NOTIFY_MODE: deliver from a `nakhon notify` child process "
                             "(process, the high-rate deployment) or in the measured process")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of the write-rate measurement")
    args = parser.parse_args()
    MAX_DELAY[0] = args.max_delay
    MAX_ENTITIES[0] = args.max_entities
    MODE[0] = args.notify_mode
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
        for child in CHILDREN:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
        receiver.kill()
        shutil.rmtree(tmp, ignore_errors=True)  # the SQLite files are gone already; the folder too


if __name__ == "__main__":
    main()
