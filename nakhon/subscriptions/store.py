"""Where subscriptions and the notification outbox live: one small contract, two engines.

Both engines keep the tables of migration "subscriptions" (SQLite ``MIGRATIONS[1]``,
PostgreSQL ``0002_subscriptions.sql``). Outbox rows are *inserted* only by the write hook, in
the entity write transaction; this module reads them in ``seq`` order per subscription and
deletes them once delivered (:meth:`SubStore.ack`).

On SQLite every write here runs on the engine's writer thread (``SqliteWriter.run``) so that
the file keeps a single writer; reads use a connection of their own (WAL lets them run beside
the writer). On PostgreSQL everything uses the engine's pool.
"""

from __future__ import annotations

import asyncio
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


@dataclass(slots=True)
class OutboxRow:
    seq: int
    payload: bytes
    created_at: str


class SubStore(Protocol):
    async def load(self) -> list[StoredSub]: ...
    async def insert(self, tenant: str, sub_id: str, doc: dict[str, Any], now: str) -> int: ...
    async def update(self, pk: int, doc: dict[str, Any], now: str) -> None: ...
    async def delete(self, pk: int) -> None: ...
    async def fetch(self, sub_pk: int, limit: int) -> list[OutboxRow]: ...
    async def ack(self, sub_pk: int, seqs: Sequence[int], stats: Stats) -> None: ...
    async def pending(self) -> set[int]: ...
    async def version(self) -> str: ...
    async def close(self) -> None: ...


_COLUMNS = ("pk, tenant, id, doc, created_at, modified_at, times_sent, times_failed,"
            " last_notification, last_success, last_failure")
_STATS_SQL = ("UPDATE subscriptions SET times_sent = ?, times_failed = ?, last_notification = ?,"
              " last_success = ?, last_failure = ? WHERE pk = ?")
_PG_STATS_SQL = ("UPDATE subscriptions SET times_sent = $1, times_failed = $2,"
                 " last_notification = $3, last_success = $4, last_failure = $5 WHERE pk = $6")


def _stored(row: Sequence[Any], doc: dict[str, Any]) -> StoredSub:
    return StoredSub(row[0], row[1], row[2], doc, row[4], row[5],
                     Stats(row[6], row[7], row[8], row[9], row[10]))


def _stats_args(stats: Stats, pk: int) -> tuple[Any, ...]:
    return (stats.times_sent, stats.times_failed, stats.last_notification, stats.last_success,
            stats.last_failure, pk)


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

    async def insert(self, tenant: str, sub_id: str, doc: dict[str, Any], now: str) -> int:
        def go(conn: sqlite3.Connection) -> int:
            try:
                cur = conn.execute(
                    "INSERT INTO subscriptions (tenant, id, doc, created_at, modified_at)"
                    " VALUES (?, ?, ?, ?, ?)", (tenant, sub_id, orjson.dumps(doc).decode(),
                                                now, now))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"Subscription {sub_id} already exists.") from None
            assert cur.lastrowid is not None
            return cur.lastrowid

        return await self._write(go)

    async def update(self, pk: int, doc: dict[str, Any], now: str) -> None:
        await self._write(lambda c: c.execute(
            "UPDATE subscriptions SET doc = ?, modified_at = ? WHERE pk = ?",
            (orjson.dumps(doc).decode(), now, pk)))

    async def delete(self, pk: int) -> None:
        def go(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM notification_outbox WHERE sub_pk = ?", (pk,))
            conn.execute("DELETE FROM subscriptions WHERE pk = ?", (pk,))

        await self._write(go)

    async def fetch(self, sub_pk: int, limit: int) -> list[OutboxRow]:
        rows = await self._read(lambda c: c.execute(
            "SELECT seq, payload, created_at FROM notification_outbox WHERE sub_pk = ?"
            " ORDER BY seq LIMIT ?", (sub_pk, limit)).fetchall())
        return [OutboxRow(r[0], bytes(r[1]), r[2]) for r in rows]

    async def ack(self, sub_pk: int, seqs: Sequence[int], stats: Stats) -> None:
        def go(conn: sqlite3.Connection) -> None:
            if seqs:
                marks = ",".join("?" * len(seqs))
                conn.execute(f"DELETE FROM notification_outbox WHERE seq IN ({marks})",
                             tuple(seqs))
            conn.execute(_STATS_SQL, _stats_args(stats, sub_pk))

        await self._write(go)

    async def pending(self) -> set[int]:
        rows = await self._read(lambda c: c.execute(
            "SELECT DISTINCT sub_pk FROM notification_outbox").fetchall())
        return {r[0] for r in rows}

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

    async def insert(self, tenant: str, sub_id: str, doc: dict[str, Any], now: str) -> int:
        import asyncpg

        try:
            pk = await self._pool.fetchval(
                "INSERT INTO subscriptions (tenant, id, doc, created_at, modified_at)"
                " VALUES ($1, $2, $3, $4, $4) RETURNING pk", tenant, sub_id, doc, now)
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(f"Subscription {sub_id} already exists.") from None
        return int(pk)

    async def update(self, pk: int, doc: dict[str, Any], now: str) -> None:
        await self._pool.execute(
            "UPDATE subscriptions SET doc = $1, modified_at = $2 WHERE pk = $3", doc, now, pk)

    async def delete(self, pk: int) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM notification_outbox WHERE sub_pk = $1", pk)
            await conn.execute("DELETE FROM subscriptions WHERE pk = $1", pk)

    async def fetch(self, sub_pk: int, limit: int) -> list[OutboxRow]:
        rows = await self._pool.fetch(
            "SELECT seq, payload, created_at FROM notification_outbox WHERE sub_pk = $1"
            " ORDER BY seq LIMIT $2", sub_pk, limit)
        return [OutboxRow(r[0], bytes(r[1]), r[2]) for r in rows]

    async def ack(self, sub_pk: int, seqs: Sequence[int], stats: Stats) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if seqs:
                await conn.execute(
                    "DELETE FROM notification_outbox WHERE seq = ANY($1::bigint[])", list(seqs))
            await conn.execute(_PG_STATS_SQL, *_stats_args(stats, sub_pk))

    async def pending(self) -> set[int]:
        rows = await self._pool.fetch("SELECT DISTINCT sub_pk FROM notification_outbox")
        return {r[0] for r in rows}

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
