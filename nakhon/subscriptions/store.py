"""Where subscriptions and the notification outbox live: one small contract, two engines.

Both engines keep the tables of the subscription migrations (SQLite ``MIGRATIONS`` 2 and 4,
PostgreSQL ``0002`` and ``0004``). Outbox rows are *inserted* only by the write hook, in the
entity write transaction: one row per change with the subscriptions it fires (``subs`` =
``",3,7,"``). Each subscription reads them in ``seq`` order from its cursor
(``subscriptions.delivered_seq``, moved by :meth:`SubStore.ack` after delivery); rows every
listed subscription has passed are deleted by :meth:`SubStore.collect`. ``seq`` follows commit
order on both engines (see ``nakhon.storage.hooks``), which is what makes a cursor safe.

On SQLite every write here runs on the engine's writer thread (``SqliteWriter.run``) so that
the file keeps a single writer; reads use a connection of their own (WAL lets them run beside
the writer). On PostgreSQL everything uses the engine's pool.
"""

from __future__ import annotations

import asyncio
import bisect
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson

from nakhon.core.errors import AlreadyExists

T = TypeVar("T")


@dataclass(slots=True)
class Stats:
    """Delivery statistics of one subscription (NotificationParams status members)."""

    times_sent: int = 0
    times_failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None

    def status(self) -> str | None:
        if self.last_notification is None:
            return None
        if self.last_failure is not None and (
            self.last_success is None or self.last_failure > self.last_success
        ):
            return "failed"
        return "ok"


@dataclass(slots=True)
class StoredSub:
    pk: int
    tenant: str
    id: str
    doc: dict[str, Any]
    created_at: str
    modified_at: str
    stats: Stats
    cursor: int = 0


@dataclass(slots=True)
class OutboxRow:
    seq: int
    payload: bytes
    created_at: str


class SubStore(Protocol):
    async def load(self) -> list[StoredSub]: ...
    async def insert(self, tenant: str, sub_id: str, doc: dict[str, Any],
                     now: str) -> tuple[int, int]: ...
    async def update(self, pk: int, doc: dict[str, Any], now: str) -> None: ...
    async def delete(self, pk: int) -> None: ...
    async def fetch(self, after: int, limit: int) -> list[tuple[int, str, bytes, str]]: ...
    async def ack(self, sub_pk: int, cursor: int, stats: Stats) -> None: ...
    async def ack_many(self, acks: Sequence[tuple[int, int, Stats]]) -> None: ...
    async def stats(self) -> dict[int, Stats]: ...
    async def last_seq(self) -> int: ...
    async def newest(self) -> tuple[int, bytes]: ...
    async def pending(self) -> set[int]: ...
    async def collect(self, below: int) -> None: ...
    async def version(self) -> str: ...
    async def close(self) -> None: ...


RawRow = tuple[int, str, bytes, str]  # seq, subs, payload, created_at


class SharedFetch:
    """Outbox reads shared by the subscription workers, which mostly read the same rows: a
    read from where one is in flight waits for it, and a read from inside the rows of the
    last read is answered from them (rows are visible in ``seq`` order, so the rows of one
    read after ``a`` are exactly those in (a, its last seq]; what is newer, the next read
    fetches)."""

    def __init__(self, store: SubStore) -> None:
        self.store = store
        self._run: list[RawRow] = []
        self._run_after = 0
        self._seqs: list[int] = []
        self._inflight: dict[tuple[int, int], asyncio.Task[list[RawRow]]] = {}
        self.shared = 0  # reads answered without a query of their own

    async def fetch(self, after: int, limit: int) -> list[RawRow]:
        if self._run and self._run_after <= after < self._seqs[-1]:
            self.shared += 1
            start = bisect.bisect_right(self._seqs, after)
            return self._run[start:start + limit]
        key = (after, limit)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._read(after, limit))
            task.add_done_callback(_retrieved)  # no warning when every reader was cancelled
            self._inflight[key] = task
        else:
            self.shared += 1
        # Shielded: one worker cancelled (stopping, its subscription deleted) must not cancel
        # the read the others wait for.
        return await asyncio.shield(task)

    async def _read(self, after: int, limit: int) -> list[RawRow]:
        try:
            rows = await self.store.fetch(after, limit)
        finally:
            del self._inflight[(after, limit)]
        if rows:
            self._run, self._run_after, self._seqs = rows, after, [r[0] for r in rows]
        return rows


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def matching(rows: Sequence[tuple[int, str, bytes, str]], pk: int) -> list[OutboxRow]:
    """The rows (``seq, subs, payload, created_at``) that fire subscription ``pk``."""
    tag = f",{pk},"
    return [OutboxRow(seq, payload, created) for seq, subs, payload, created in rows
            if tag in subs]


def pending_of(rows: Sequence[tuple[int, str]], cursors: dict[int, int]) -> set[int]:
    """Subscriptions with rows past their cursor, from (seq, subs) rows."""
    found: set[int] = set()
    for seq, subs in rows:
        for part in subs.strip(",").split(","):
            pk = int(part)
            if seq > cursors.get(pk, seq):
                found.add(pk)
    return found


_COLUMNS = ("pk, tenant, id, doc, created_at, modified_at, times_sent, times_failed,"
            " last_notification, last_success, last_failure, delivered_seq")
_STATS_SQL = ("UPDATE subscriptions SET times_sent = ?, times_failed = ?, last_notification = ?,"
              " last_success = ?, last_failure = ?, delivered_seq = max(delivered_seq, ?)"
              " WHERE pk = ?")
_PG_STATS_SQL = ("UPDATE subscriptions SET times_sent = $1, times_failed = $2,"
                 " last_notification = $3, last_success = $4, last_failure = $5,"
                 " delivered_seq = greatest(delivered_seq, $6) WHERE pk = $7")
_FETCH = ("SELECT seq, subs, payload, created_at FROM notification_outbox WHERE seq > {}"
          " ORDER BY seq LIMIT {}")
_PENDING = "SELECT seq, subs FROM notification_outbox"
_STATS = ("SELECT pk, times_sent, times_failed, last_notification, last_success, last_failure"
          " FROM subscriptions")
_LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM notification_outbox"
# The newest row's seq and its payload's first bytes (``{"busy":1`` from a busy writer).
_NEWEST = "SELECT seq, {} FROM notification_outbox ORDER BY seq DESC LIMIT 1"
_NEW_CURSOR = "(SELECT coalesce(max(seq), 0) FROM notification_outbox)"


def _stored(row: Sequence[Any], doc: dict[str, Any]) -> StoredSub:
    return StoredSub(row[0], row[1], row[2], doc, row[4], row[5],
                     Stats(row[6], row[7], row[8], row[9], row[10]), row[11])


def _stats_args(stats: Stats, cursor: int, pk: int) -> tuple[Any, ...]:
    return (stats.times_sent, stats.times_failed, stats.last_notification, stats.last_success,
            stats.last_failure, cursor, pk)


class SqliteSubStore:
    """SQLite: reads on an own connection/thread, writes on the engine's writer thread."""

    def __init__(self, path: str, run: Callable[[Callable[[sqlite3.Connection], Any]], Any]):
        self._path = path
        self._run = run  # SqliteWriter.run
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="nakhon-outbox-read")
        self._conn: sqlite3.Connection | None = None

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def go() -> T:
            if self._conn is None:
                self._conn = sqlite3.connect(self._path, isolation_level=None,
                                             check_same_thread=False)
                self._conn.execute("PRAGMA busy_timeout=10000")
                self._conn.execute("PRAGMA query_only=1")
            return fn(self._conn)

        return await asyncio.get_running_loop().run_in_executor(self._pool, go)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._run(fn)
        return result

    async def load(self) -> list[StoredSub]:
        rows = await self._read(
            lambda c: c.execute(f"SELECT {_COLUMNS} FROM subscriptions ORDER BY pk").fetchall())
        return [_stored(r, orjson.loads(r[3])) for r in rows]

    async def insert(self, tenant: str, sub_id: str, doc: dict[str, Any],
                     now: str) -> tuple[int, int]:
        """A new subscription; its cursor starts after every existing row (no old changes)."""
        def go(conn: sqlite3.Connection) -> tuple[int, int]:
            try:
                row = conn.execute(
                    "INSERT INTO subscriptions (tenant, id, doc, created_at, modified_at,"
                    f" delivered_seq) VALUES (?, ?, ?, ?, ?, {_NEW_CURSOR})"
                    " RETURNING pk, delivered_seq",
                    (tenant, sub_id, orjson.dumps(doc).decode(), now, now)).fetchone()
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"Subscription {sub_id} already exists.") from None
            return int(row[0]), int(row[1])

        return await self._write(go)

    async def update(self, pk: int, doc: dict[str, Any], now: str) -> None:
        await self._write(lambda c: c.execute(
            "UPDATE subscriptions SET doc = ?, modified_at = ? WHERE pk = ?",
            (orjson.dumps(doc).decode(), now, pk)))

    async def delete(self, pk: int) -> None:
        # Its rows go with the next collect(): a missing subscription no longer holds them.
        await self._write(lambda c: c.execute("DELETE FROM subscriptions WHERE pk = ?", (pk,)))

    async def fetch(self, after: int, limit: int) -> list[tuple[int, str, bytes, str]]:
        rows = await self._read(lambda c: c.execute(_FETCH.format("?", "?"),
                                                    (after, limit)).fetchall())
        return [(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    async def ack(self, sub_pk: int, cursor: int, stats: Stats) -> None:
        await self._write(lambda c: c.execute(_STATS_SQL, _stats_args(stats, cursor, sub_pk)))

    async def ack_many(self, acks: Sequence[tuple[int, int, Stats]]) -> None:
        args = [_stats_args(stats, cursor, pk) for pk, cursor, stats in acks]
        await self._write(lambda c: c.executemany(_STATS_SQL, args))

    async def stats(self) -> dict[int, Stats]:
        rows = await self._read(lambda c: c.execute(_STATS).fetchall())
        return {r[0]: Stats(*r[1:]) for r in rows}

    async def last_seq(self) -> int:
        row = await self._read(lambda c: c.execute(_LAST_SEQ).fetchone())
        return int(row[0])

    async def newest(self) -> tuple[int, bytes]:
        row = await self._read(
            lambda c: c.execute(_NEWEST.format("substr(payload, 1, 9)")).fetchone())
        return (int(row[0]), bytes(row[1])) if row else (0, b"")

    async def pending(self) -> set[int]:
        def go(c: sqlite3.Connection) -> set[int]:
            cursors = dict(c.execute("SELECT pk, delivered_seq FROM subscriptions").fetchall())
            return pending_of(c.execute(_PENDING).fetchall(), cursors)

        return await self._read(go)

    async def collect(self, below: int) -> None:
        # The newest row always stays: SQLite numbers a new row max(seq) + 1, so an emptied
        # table would start again at 1, behind every cursor, and those rows would never be sent.
        await self._write(lambda c: c.execute(
            "DELETE FROM notification_outbox WHERE seq < ?"
            " AND seq < (SELECT max(seq) FROM notification_outbox)", (below,)))

    async def version(self) -> str:
        row = await self._read(lambda c: c.execute(
            "SELECT count(*), max(modified_at), max(pk) FROM subscriptions").fetchone())
        return repr(tuple(row))

    async def close(self) -> None:
        conn = self._conn

        def shut() -> None:
            if conn is not None:
                conn.close()

        await asyncio.get_running_loop().run_in_executor(self._pool, shut)
        self._pool.shutdown(wait=True)


class PgSubStore:
    """PostgreSQL: the engine's asyncpg pool (jsonb through orjson, see postgres.codec)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def load(self) -> list[StoredSub]:
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM subscriptions ORDER BY pk")
        return [_stored(tuple(r), r["doc"]) for r in rows]

    async def insert(self, tenant: str, sub_id: str, doc: dict[str, Any],
                     now: str) -> tuple[int, int]:
        import asyncpg

        try:
            row = await self._pool.fetchrow(
                "INSERT INTO subscriptions (tenant, id, doc, created_at, modified_at,"
                f" delivered_seq) VALUES ($1, $2, $3, $4, $4, {_NEW_CURSOR})"
                " RETURNING pk, delivered_seq", tenant, sub_id, doc, now)
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(f"Subscription {sub_id} already exists.") from None
        return int(row[0]), int(row[1])

    async def update(self, pk: int, doc: dict[str, Any], now: str) -> None:
        await self._pool.execute(
            "UPDATE subscriptions SET doc = $1, modified_at = $2 WHERE pk = $3", doc, now, pk)

    async def delete(self, pk: int) -> None:
        await self._pool.execute("DELETE FROM subscriptions WHERE pk = $1", pk)

    async def fetch(self, after: int, limit: int) -> list[tuple[int, str, bytes, str]]:
        rows = await self._pool.fetch(_FETCH.format("$1", "$2"), after, limit)
        return [(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    async def ack(self, sub_pk: int, cursor: int, stats: Stats) -> None:
        await self._pool.execute(_PG_STATS_SQL, *_stats_args(stats, cursor, sub_pk))

    async def ack_many(self, acks: Sequence[tuple[int, int, Stats]]) -> None:
        await self._pool.executemany(
            _PG_STATS_SQL, [_stats_args(stats, cursor, pk) for pk, cursor, stats in acks])

    async def stats(self) -> dict[int, Stats]:
        return {r[0]: Stats(*tuple(r)[1:]) for r in await self._pool.fetch(_STATS)}

    async def last_seq(self) -> int:
        return int(await self._pool.fetchval(_LAST_SEQ))

    async def newest(self) -> tuple[int, bytes]:
        row = await self._pool.fetchrow(_NEWEST.format("substring(payload from 1 for 9)"))
        return (int(row[0]), bytes(row[1])) if row else (0, b"")

    async def pending(self) -> set[int]:
        async with self._pool.acquire() as conn:
            cursors = dict(await conn.fetch("SELECT pk, delivered_seq FROM subscriptions"))
            rows = await conn.fetch(_PENDING)
        return pending_of([(r[0], r[1]) for r in rows], cursors)

    async def collect(self, below: int) -> None:
        await self._pool.execute("DELETE FROM notification_outbox WHERE seq < $1", below)

    async def version(self) -> str:
        row = await self._pool.fetchrow(
            "SELECT count(*), max(modified_at), max(pk) FROM subscriptions")
        return repr(tuple(row))

    async def close(self) -> None:
        return None


def store_for(storage: Any) -> SubStore:
    """The store matching a storage engine (SQLite or PostgreSQL)."""
    from nakhon.storage.sqlite import SqliteStorage

    if isinstance(storage, SqliteStorage):
        return SqliteSubStore(storage.path, storage.writer.run)
    return PgSubStore(storage.pool)
