"""Delivery in a process of its own (``NAKHON_NOTIFY_MODE=process`` or ``external``).

The serving process only writes the outbox (the hook, in the write transaction); a delivering
process (``nakhon notify``) reads it, sends, and saves cursors and statistics. What that needs:

* :class:`FileLock` / :class:`PgLock` — exactly one delivering process per database: an OS file
  lock beside the SQLite file (``fcntl.flock``; the kernel drops it when the process dies, even
  by SIGKILL), a session advisory lock on PostgreSQL (dropped with its connection).
* :class:`AckBuffer` — the store, with cursor and statistics saves batched: at most one write
  every ``interval`` seconds for all subscriptions together (on SQLite every save contends with
  the serving process's writer for the file's lock). A cursor is saved only after what it
  passes was sent, so a crash resends at most the last interval's notifications (at least
  once, in order, same notification ids).
* :func:`watch_outbox` — new rows committed by another process wake no worker here: a cheap
  ``max(seq)`` read every ``NAKHON_NOTIFY_POLL_INTERVAL`` seconds does, and subscription edits
  (another process's API calls) are picked up every ``refresh_every`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nakhon.core.logs import get_logger
from nakhon.subscriptions.store import Stats, StoredSub, SubStore

log = get_logger("nakhon.subscriptions.process")

MODES = ("inline", "process", "external")


class FileLock:
    """An exclusive ``flock`` on a file beside the SQLite database (non-blocking tries)."""

    def __init__(self, db_path: str) -> None:
        self.path = db_path + ".notify-lock"
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, b"%d\n" % os.getpid())  # who delivers (for people; the lock is the flock)
        self._fd = fd
        return True

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class PgLock:
    """A session advisory lock (keyed by the schema), held on a dedicated pool connection."""

    SQL = "SELECT pg_try_advisory_lock(hashtext('nakhon-notify:' || current_schema()))"

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._conn: Any = None

    async def try_acquire(self) -> bool:
        conn = await self.pool.acquire()
        try:
            if await conn.fetchval(self.SQL):
                self._conn = conn
                return True
        except BaseException:
            await self.pool.release(conn)
            raise
        await self.pool.release(conn)
        return False

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.execute("SELECT pg_advisory_unlock_all()")
            await self.pool.release(conn)


def lock_for(storage: Any) -> FileLock | PgLock | None:
    """The delivering process's lock for this storage (None: an in-memory SQLite database,
    which no other process can open)."""
    path = getattr(storage, "path", None)
    if isinstance(path, str):
        return None if path == ":memory:" else FileLock(path)
    return PgLock(storage.pool)


class AckBuffer:
    """A :class:`SubStore` whose ``ack`` only records; :meth:`flush` saves (see the module
    docstring). Everything else goes straight to the store."""

    def __init__(self, store: SubStore, interval: float = 0.2) -> None:
        self.store = store
        self.interval = interval
        self._acks: dict[int, tuple[int, Stats]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.flushes = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="nakhon-acks")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # kept: the next flush saves them (the newest cursor wins)
                log.exception("saving notification cursors failed")

    async def flush(self) -> None:
        async with self._lock:
            if not self._acks:
                return
            acks, self._acks = self._acks, {}
            try:
                await self.store.ack_many([(pk, c, s) for pk, (c, s) in acks.items()])
            except BaseException:
                for pk, (cursor, stats) in acks.items():  # put back unless newer ones came
                    self._acks.setdefault(pk, (cursor, stats))
                raise
            self.flushes += 1

    async def ack(self, sub_pk: int, cursor: int, stats: Stats) -> None:
        old = self._acks.get(sub_pk)
        self._acks[sub_pk] = (max(cursor, old[0]) if old else cursor, stats)

    async def ack_many(self, acks: Sequence[tuple[int, int, Stats]]) -> None:
        for pk, cursor, stats in acks:
            await self.ack(pk, cursor, stats)

    async def collect(self, below: int) -> None:
        await self.flush()  # rows go only once the cursors that passed them are saved
        await self.store.collect(below)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        finally:
            await self.store.close()

    # --- straight through ------------------------------------------------------------------

    async def load(self) -> list[StoredSub]:
        return await self.store.load()

    async def insert(self, tenant: str, sub_id: str, doc: dict[str, Any],
                     now: str) -> tuple[int, int]:
        return await self.store.insert(tenant, sub_id, doc, now)

    async def update(self, pk: int, doc: dict[str, Any], now: str) -> None:
        await self.store.update(pk, doc, now)

    async def delete(self, pk: int) -> None:
        await self.store.delete(pk)

    async def fetch(self, after: int, limit: int) -> list[tuple[int, str, bytes, str]]:
        return await self.store.fetch(after, limit)

    async def stats(self) -> dict[int, Stats]:
        return await self.store.stats()

    async def last_seq(self) -> int:
        return await self.store.last_seq()

    async def newest(self) -> tuple[int, bytes]:
        return await self.store.newest()

    async def pending(self) -> set[int]:
        return await self.store.pending()

    async def version(self) -> str:
        return await self.store.version()


class WriterBusy:
    """Is the serving process's writer busy? Its outbox hook marks the rows it writes while
    writes queue (``{"busy":1,...}``); a delivering process of its own then yields to it
    (the writes-first pacing of ``nakhon.subscriptions.pacing``) for ``hold`` seconds after
    the newest such row it saw."""

    def __init__(self, hold: float = 0.25) -> None:
        self.hold = hold
        self.until = 0.0

    def saw(self, head: bytes) -> None:
        if head.startswith(b'{"busy":1'):
            self.until = time.monotonic() + self.hold

    def __call__(self) -> bool:
        return time.monotonic() < self.until


async def watch_outbox(store: SubStore, leading: asyncio.Event,
                       wake: Callable[[], None], refresh: Callable[[], Awaitable[None]],
                       interval: float, busy: WriterBusy, refresh_every: float = 0.5) -> None:
    """Wake every worker when rows were committed (by any process), and pick up subscription
    edits, for as long as this process delivers (see the module docstring)."""
    seen = -1
    next_refresh = 0.0
    loop = asyncio.get_running_loop()
    while True:
        await leading.wait()
        try:
            last, head = await store.newest()
            if last != seen:  # a new row: was its writer busy?
                busy.saw(head)
            if loop.time() >= next_refresh:  # also starts the workers of new subscriptions
                next_refresh = loop.time() + refresh_every
                await refresh()
                seen = -1
            if last != seen:
                seen = last
                wake()
        except Exception:
            log.exception("watching the outbox failed; retrying")
        await asyncio.sleep(interval)
