"""The ingest batcher: many device messages, one storage write.

Messages arrive one by one (MQTT) or a few at a time (HTTP); writing each alone would cost a
transaction per message. The batcher collects what arrives within ``max_wait`` seconds of the
first waiting message — or ``max_items`` measurements, whichever comes first — and writes them
with ONE :func:`~nakhon.iot.service.ingest_measurements` call. Under load the queue is never
empty, so there is no waiting at all and each write takes everything that queued during the
previous one: batches grow with load, as in the storage writer's group commit.

Each submission carries a callback called after the commit with its items' results; the MQTT
consumer acknowledges there, so a message is acked only once its measurements are durable. A
storage failure (database down) is retried with backoff rather than dropped: the callbacks wait,
nothing is acked, and whatever the broker still holds is redelivered after a restart. Any
other failure is a defect one measurement triggers: the batch is split until that measurement
is alone, and it alone is refused (dead-lettered), so a poisoned message cannot stall ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from nakhon.core.errors import NgsiError
from nakhon.core.logs import get_logger
from nakhon.iot import stats as reasons
from nakhon.iot.service import Measurement
from nakhon.iot.stats import IngestStats
from nakhon.storage.base import Outcome

log = get_logger("nakhon.iot.batcher")

Results = list[Outcome | Exception]
Writer = Callable[[Sequence[Measurement]], Awaitable[Results]]
Done = Callable[[Results], None]

RETRY_MAX_SECONDS = 5.0


@dataclass(slots=True)
class _Submission:
    items: list[Measurement]
    done: Done | None
    transport: str


class Batcher:
    """Collects measurements and writes them in batches (see the module docstring)."""

    def __init__(self, write: Writer, stats: IngestStats, *, max_items: int,
                 max_wait: float) -> None:
        self._write = write
        self._stats = stats
        self._max_items = max(1, max_items)
        self._max_wait = max(0.0, max_wait)
        self._queue: asyncio.Queue[_Submission] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="nakhon-iot-batcher")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        self._stopping = True
        if self._task is not None:
            await self._queue.put(_Submission([], None, "stop"))
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def put(self, items: list[Measurement], done: Done | None, transport: str = "mqtt") -> None:
        """Queue items; ``done(results)`` is called after they are committed."""
        self._queue.put_nowait(_Submission(items, done, transport))

    async def submit(self, items: list[Measurement], transport: str = "http") -> Results:
        """Queue items and wait for their commit."""
        future: asyncio.Future[Results] = asyncio.get_running_loop().create_future()

        def done(results: Results) -> None:
            if not future.done():
                future.set_result(results)

        self.put(items, done, transport)
        return await future

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            count = len(first.items)
            if self._max_wait and self._queue.qsize() * 3 < self._max_items and not self._stopping:
                # Light load: give the next messages a moment to join this write.
                await asyncio.sleep(self._max_wait)
            while count < self._max_items and not self._queue.empty():
                sub = self._queue.get_nowait()
                batch.append(sub)
                count += len(sub.items)
            try:
                await self._flush(batch)
            except Exception:  # never let one bad batch stop ingest
                log.exception("iot batch failed")
            if self._stopping and self._queue.empty():
                return

    async def _flush(self, batch: list[_Submission]) -> None:
        items = [m for sub in batch for m in sub.items]
        results: Results = []
        if items:
            results = await self._write_with_retry(items)
        pos = 0
        for sub in batch:
            mine = results[pos:pos + len(sub.items)]
            pos += len(sub.items)
            for m, r in zip(sub.items, mine, strict=True):
                if isinstance(r, Exception):
                    self._stats.reject(reasons.WRITE_REFUSED, str(r), transport=sub.transport,
                                       tenant=m.tenant, topic=None, payload=m.entity_id)
            if sub.done is not None:
                try:
                    sub.done(mine)
                except Exception:
                    log.exception("iot completion callback failed")
        self._stats.counters["written"] += sum(1 for r in results if isinstance(r, Outcome))
        self._stats.counters["batches"] += 1

    async def _write_with_retry(self, items: list[Measurement]) -> Results:
        delay = 0.05
        while True:
            try:
                return await self._write(items)
            except NgsiError as exc:
                # Refused as a whole (e.g. authorisation): every item gets the error.
                return [exc] * len(items)
            except Exception as exc:
                if self._stopping:
                    raise
                if not transient(exc):
                    return await self._isolate(items, exc)
                self._stats.counters["retries"] += 1
                log.warning("iot write failed; retrying", error=str(exc), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _isolate(self, items: list[Measurement], exc: Exception) -> Results:
        """A failure that is not the storage being unreachable: a defect some measurement
        triggers. Retrying the batch would fail forever and stall all ingest behind it, so
        each item is written alone (halves first: one poisoned item among thousands costs
        about 2·log2(n) writes); the item that still fails alone gets the error (counted,
        dead-lettered, acknowledged like a refused write), the others are written."""
        if len(items) == 1:
            log.error("iot measurement could not be written", error=repr(exc),
                      entity=items[0].entity_id)
            return [exc]
        half = len(items) // 2
        return [*await self._write_with_retry(items[:half]),
                *await self._write_with_retry(items[half:])]


def transient(exc: BaseException) -> bool:
    """Is this the storage being unreachable or busy for a while (retry the batch as it is),
    rather than a defect some measurement triggers? Connection and I/O errors, timeouts,
    SQLite's operational errors (locked, disk I/O) and PostgreSQL's connection-class errors."""
    if isinstance(exc, (OSError, TimeoutError, sqlite3.OperationalError)):
        return True
    return isinstance(exc, (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                            asyncpg.exceptions.CannotConnectNowError,
                            asyncpg.exceptions.TooManyConnectionsError,
                            asyncpg.exceptions.OperatorInterventionError,
                            asyncpg.exceptions.InsufficientResourcesError))
