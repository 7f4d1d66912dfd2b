"""Durable dead letters: a bounded log of refused IoT messages in storage, written in batches.

Recording a letter is O(1) and never waits: :meth:`DeadLetterLog.add` appends to a bounded
buffer in memory; one background task moves the buffer to storage with ONE
``kv_put_many`` call per flush (a flush starts when ``flush_items`` letters wait or the oldest
has waited ``flush_wait`` seconds, and never sooner than ``min_gap`` after the previous one).
That write also trims the namespace to the newest ``max_letters`` letters of *all* processes
sharing the database (oldest first), so the bound holds however many Nakhon processes run.

A hostile device flooding bad messages therefore costs the ingest loop one append per message
and the database at most ``1 / min_gap`` small writes a second: when the buffer is full the
oldest pending letter is dropped and counted (``dropped``), as is a batch whose write failed.

Keys are fixed-width digits — nanosecond time, a per-process number, a sequence — so they sort
by age in every collation, and a reader pages them newest first on the server.
Without storage (``storage=None``) the log is the bounded list in memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from nakhon.core.logs import get_logger

log = get_logger("nakhon.iot")

NAMESPACE = "iot.deadLetters"
FLUSH_ITEMS = 256
FLUSH_WAIT = 0.2
MIN_GAP = 0.1
BUFFER_MAX = 2048


@dataclass(slots=True)
class DeadLetter:
    """One refused message: when, why, where from, and the start of its payload."""

    at: str
    reason: str
    detail: str
    transport: str
    tenant: str | None
    apikey: str | None
    device_id: str | None
    topic: str | None
    payload: str

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = tuple(f.name for f in fields(DeadLetter))


def letter_from(doc: Any) -> DeadLetter | None:
    """A stored document back to a letter (None for anything else found in the namespace)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("at"), str):
        return None
    values: dict[str, Any] = {name: doc.get(name) for name in _FIELDS}
    return DeadLetter(**values)


class DeadLetterStorage(Protocol):
    """The two storage calls the log needs (``nakhon.storage.base.Storage`` has them)."""

    async def kv_put_many(
        self, namespace: str, items: Sequence[tuple[str, Any]], *, keep: int | None = None
    ) -> int: ...

    async def kv_page(
        self,
        namespace: str,
        *,
        limit: int,
        offset: int = 0,
        descending: bool = False,
        field: str | None = None,
        values: Collection[str] | None = None,
    ) -> list[tuple[str, Any]]: ...


class DeadLetterLog:
    """The bounded, durable dead-letter list (see the module's notes)."""

    def __init__(
        self,
        max_letters: int,
        storage: DeadLetterStorage | None = None,
        *,
        buffer_max: int = BUFFER_MAX,
        flush_items: int = FLUSH_ITEMS,
        flush_wait: float = FLUSH_WAIT,
        min_gap: float = MIN_GAP,
    ) -> None:
        self.max_letters = max(1, max_letters)
        self._storage = storage
        # Pending beyond the bound would be evicted by the same write: never buffer more.
        cap = self.max_letters if storage is None else min(max(1, buffer_max), self.max_letters)
        self._buffer: deque[tuple[str, DeadLetter]] = deque(maxlen=cap)
        self.flush_items = max(1, min(flush_items, cap))
        self.flush_wait = flush_wait
        self.min_gap = min_gap
        self._proc = f"{random.randrange(1_000_000):06d}"
        self._seq = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._last_flush = 0.0
        self._inflight = 0
        self.recorded = 0
        self.stored = 0
        self.dropped = 0
        self.evicted = 0
        self.flushes = 0
        self.write_errors = 0

    @property
    def pending(self) -> int:
        """Letters not yet in storage (buffered, or in the write in flight)."""
        return len(self._buffer) + self._inflight if self._storage is not None else 0

    def add(self, letter: DeadLetter) -> None:
        """Keep ``letter``: O(1), never blocks, never raises."""
        self.recorded += 1
        buffer = self._buffer
        n = len(buffer)
        if n == buffer.maxlen and self._storage is not None:
            self.dropped += 1  # (in memory only, this is just the bound at work)
        self._seq = (self._seq + 1) % 1_000_000_000
        buffer.append((f"{time.time_ns():020d}{self._proc}{self._seq:09d}", letter))
        if self._storage is not None and (n == 0 or n + 1 == self.flush_items):
            self._wake.set()

    def start(self) -> None:
        """Start the flusher (needs a running event loop; nothing to do without storage)."""
        if self._storage is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="nakhon-iot-dead-letters")

    async def stop(self) -> None:
        """Stop the flusher (after the write in flight, if any) and write what is pending."""
        if self._task is not None:
            async with self._lock:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self._buffer) < self.flush_items:
                # Wait for company: the full mark wakes us early, else flush_wait elapses.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_wait)
                self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write the pending letters with one storage call (at most one write in flight, and
        ``min_gap`` between two). A failed write is logged, its letters counted as dropped."""
        if self._storage is None:
            return
        async with self._lock:
            if not self._buffer:
                return
            loop = asyncio.get_running_loop()
            gap = self._last_flush + self.min_gap - loop.time()
            if gap > 0:
                await asyncio.sleep(gap)
            batch = list(self._buffer)
            self._buffer.clear()
            self._inflight = len(batch)
            try:
                self.evicted += await self._storage.kv_put_many(
                    NAMESPACE, [(k, d.to_doc()) for k, d in batch], keep=self.max_letters)
                self.stored += len(batch)
            except Exception as exc:  # the database is down: count the loss, go on
                self.write_errors += 1
                self.dropped += len(batch)
                log.warning("iot dead letters not stored", error=repr(exc), letters=len(batch))
            finally:
                self._inflight = 0
                self.flushes += 1
                self._last_flush = loop.time()

    async def page(
        self, tenants: frozenset[str] | None, limit: int, offset: int
    ) -> list[DeadLetter]:
        """Newest first; ``tenants`` None: all, else only letters of those tenants (letters of
        an unknown tenant only for None). Pending letters are written first."""
        if self._storage is None:
            items = [d for _, d in reversed(self._buffer)
                     if tenants is None or (d.tenant is not None and d.tenant in tenants)]
            return items[offset:offset + limit]
        await self.flush()
        if limit == 0 or (tenants is not None and not tenants):
            return []
        rows = await self._storage.kv_page(
            NAMESPACE, limit=limit, offset=offset, descending=True,
            field=None if tenants is None else "tenant",
            values=None if tenants is None else sorted(tenants))
        return [d for d in (letter_from(doc) for _, doc in rows) if d is not None]

    def snapshot(self) -> dict[str, int]:
        """Counters for the metrics endpoint."""
        kept = self.recorded - self.dropped if self._storage is not None else len(self._buffer)
        return {
            "deadLetters": kept,
            "deadLettersPending": self.pending,
            "deadLettersStored": self.stored,
            "deadLettersDropped": self.dropped,
            "deadLettersEvicted": self.evicted,
            "deadLetterFlushes": self.flushes,
            "deadLetterWriteErrors": self.write_errors,
        }
