"""The embedded engine: one SQLite file in WAL mode, one writer thread, readers in parallel."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from nakhon.broker.model import Entity
from nakhon.storage.base import (
    DEFAULT_TENANT,
    AttributeInfo,
    EntityQuery,
    Outcome,
    QueryPage,
    TypeInfo,
    WriteOp,
)
from nakhon.storage.history_base import (
    AggregateQuery,
    AggregateRow,
    DeletedEntity,
    DeletedQuery,
    DropQuery,
    DropRow,
    HistogramQuery,
    HistogramRow,
    InstanceQuery,
    Selector,
    StateQuery,
    StateRow,
    StoredInstance,
    WrittenQuery,
)
from nakhon.storage.hooks import WriteHook
from nakhon.storage.rows import entity_from_row
from nakhon.storage.sqlite import history
from nakhon.storage.sqlite.query import build_query, filter_geo
from nakhon.storage.sqlite.schema import migrate
from nakhon.storage.sqlite.writer import SqliteWriter

T = TypeVar("T")
_READERS = 4
_KV_UPSERT = (
    "INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?) ON CONFLICT (namespace, key)"
    " DO UPDATE SET value = excluded.value"
)
# Everything up to the (keep + 1)-th newest key goes (nothing when there are fewer).
_KV_KEEP = (
    "DELETE FROM kv WHERE namespace = ? AND key <= (SELECT key FROM kv WHERE namespace = ?"
    " ORDER BY key DESC LIMIT 1 OFFSET ?)"
)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA mmap_size=268435456")
    try:
        from nakhon.broker.query import sqlite_regexp

        conn.create_function("regexp", 2, sqlite_regexp, deterministic=True)
    except ImportError:  # pragma: no cover - the query package always provides it
        pass
    return conn


class SqliteStorage:
    """Storage on one SQLite file (see :class:`nakhon.storage.base.Storage`)."""

    def __init__(self, path: str, *, write_batch_max: int = 512) -> None:
        self.path = path
        self._batch_max = write_batch_max
        self._writer: SqliteWriter | None = None
        # Transaction hooks (nakhon.storage.hooks); append before or after open().
        self.write_hooks: list[WriteHook] = []
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="nakhon-sqlite-read")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path)
        migrate(conn)
        self._writer = SqliteWriter(conn, self._batch_max, self.write_hooks)
        self._writer.start()

    @property
    def writer(self) -> SqliteWriter:
        """The writer thread (for :meth:`SqliteWriter.run`)."""
        if self._writer is None:
            raise RuntimeError("SqliteStorage is not open")
        return self._writer

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._writer.stop)
            self._writer = None
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    # --- writes ------------------------------------------------------------------------------

    async def write(self, ops: Sequence[WriteOp]) -> list[Outcome | Exception]:
        if not ops:
            return []
        assert self._writer is not None, "storage is not open"
        return await self._writer.submit(ops)

    # --- reads -------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._conn()))

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        def run(conn: sqlite3.Connection) -> Entity | None:
            row = conn.execute(
                "SELECT id, types, scopes, created_at, modified_at, doc FROM entities"
                " WHERE tenant = ? AND id = ?",
                (tenant, entity_id),
            ).fetchone()
            return _entity(row) if row else None

        return await self._read(run)

    async def query(self, tenant: str, query: EntityQuery) -> QueryPage:
        def run(conn: sqlite3.Connection) -> QueryPage:
            built = build_query(tenant, query)
            if query.geo is not None:
                # Candidates come from the R*Tree by bounding box; the exact relation is then
                # checked with Shapely, so paging happens after the exact filter.
                rows = conn.execute(built.select_all, built.params).fetchall()
                entities = filter_geo([_entity(r) for r in rows], query.geo)
                count = len(entities) if query.count else None
                page = entities[query.offset : query.offset + query.limit]
                return QueryPage(page, count)
            rows = conn.execute(built.select_page, built.page_params).fetchall()
            count = None
            if query.count:
                count = conn.execute(built.select_count, built.params).fetchone()[0]
            return QueryPage([_entity(r) for r in rows], count)

        return await self._read(run)

    async def tenant_exists(self, tenant: str) -> bool:
        if tenant == DEFAULT_TENANT:
            return True

        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT 1 FROM tenants WHERE name = ?", (tenant,)).fetchone()
            return row is not None

        return await self._read(run)

    async def list_types(self, tenant: str) -> list[TypeInfo]:
        def run(conn: sqlite3.Connection) -> list[TypeInfo]:
            counts = dict(
                conn.execute(
                    "SELECT type, count(*) FROM entity_types WHERE tenant = ? GROUP BY type",
                    (tenant,),
                ).fetchall()
            )
            attrs: dict[str, list[str]] = {t: [] for t in counts}
            rows = conn.execute(
                "SELECT DISTINCT t.type, j.key FROM entity_types t"
                " JOIN entities e ON e.pk = t.entity_pk, json_each(e.doc, '$.attrs') j"
                " WHERE t.tenant = ? ORDER BY t.type, j.key",
                (tenant,),
            )
            for etype, attr in rows:
                attrs[etype].append(attr)
            return [TypeInfo(t, attrs[t], counts[t]) for t in sorted(counts)]

        return await self._read(run)

    async def list_attributes(self, tenant: str) -> list[AttributeInfo]:
        def run(conn: sqlite3.Connection) -> list[AttributeInfo]:
            rows = conn.execute(
                "SELECT j.key, e.pk, e.types, json_extract(i.value, '$.type')"
                " FROM entities e, json_each(e.doc, '$.attrs') j, json_each(j.value) i"
                " WHERE e.tenant = ?",
                (tenant,),
            )
            return _aggregate_attributes(rows)

        return await self._read(run)

    # --- temporal history (nakhon.storage.history_base; SQL in sqlite/history.py) -------------

    async def history_instances(self, query: InstanceQuery) -> list[StoredInstance]:
        return await self._read(lambda conn: history.instances(conn, query))

    async def history_aggregate(self, query: AggregateQuery) -> list[AggregateRow]:
        return await self._read(lambda conn: history.aggregate(conn, query))

    async def history_entities(self, tenant: str, entity_ids: Sequence[str]) -> set[str]:
        return await self._read(lambda c: history.entities_with_history(c, tenant, entity_ids))

    async def history_attrs(self, tenant: str, entity_ids: Sequence[str]) -> dict[str, list[str]]:
        return await self._read(lambda c: history.attrs_of(c, tenant, entity_ids))

    async def history_deleted(self, query: DeletedQuery) -> list[DeletedEntity]:
        return await self._read(lambda c: history.deleted_entities(c, query))

    async def history_value_histogram(self, query: HistogramQuery) -> list[HistogramRow]:
        return await self._read(lambda conn: history.value_histogram(conn, query))

    async def history_state_durations(self, query: StateQuery) -> list[StateRow]:
        return await self._read(lambda conn: history.state_durations(conn, query))

    async def history_value_drops(self, query: DropQuery) -> list[DropRow]:
        return await self._read(lambda conn: history.value_drops(conn, query))

    async def history_mark(self) -> int:
        return await self._read(history.mark)

    async def history_written_after(self, query: WrittenQuery) -> set[int]:
        return await self._read(lambda conn: history.written_after(conn, query))

    async def history_get(
        self, tenant: str, entity_id: str, attr: str, hid: int
    ) -> StoredInstance | None:
        return await self._read(lambda c: history.get_instance(c, tenant, entity_id, attr, hid))

    async def history_delete(
        self,
        tenant: str,
        entity_id: str,
        attr: str | None = None,
        *,
        dataset_id: str | None = None,
        all_datasets: bool = True,
    ) -> int:
        return await asyncio.to_thread(
            history.write,
            self.path,
            lambda c: history.delete_history(c, tenant, entity_id, attr, dataset_id, all_datasets),
        )

    async def history_replace(
        self, tenant: str, entity_id: str, attr: str, hid: int, instance: Any
    ) -> bool:
        return await asyncio.to_thread(
            history.write,
            self.path,
            lambda c: history.replace_instance(c, tenant, entity_id, attr, hid, instance),
        )

    async def history_delete_instance(
        self, tenant: str, entity_id: str, attr: str, hid: int
    ) -> bool:
        return await asyncio.to_thread(
            history.write,
            self.path,
            lambda c: history.delete_instance(c, tenant, entity_id, attr, hid),
        )

    async def history_prune(
        self, selector: Selector, before: Any, shadowed: Sequence[Selector]
    ) -> int:
        return await asyncio.to_thread(
            history.write, self.path, lambda c: history.prune(c, selector, before, shadowed)
        )

    # --- small documents ---------------------------------------------------------------------

    async def kv_get(self, namespace: str, key: str) -> Any | None:
        def run(conn: sqlite3.Connection) -> Any | None:
            row = conn.execute(
                "SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
            ).fetchone()
            return orjson.loads(row[0]) if row else None

        return await self._read(run)

    async def kv_put(self, namespace: str, key: str, value: Any) -> None:
        await self._kv_write(_KV_UPSERT, (namespace, key, orjson.dumps(value).decode()))

    async def kv_delete(self, namespace: str, key: str) -> bool:
        return await self._kv_write(
            "DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
        )

    async def kv_list(self, namespace: str) -> dict[str, Any]:
        def run(conn: sqlite3.Connection) -> dict[str, Any]:
            rows = conn.execute("SELECT key, value FROM kv WHERE namespace = ?", (namespace,))
            return {k: orjson.loads(v) for k, v in rows}

        return await self._read(run)

    async def kv_put_many(
        self, namespace: str, items: Sequence[tuple[str, Any]], *, keep: int | None = None
    ) -> int:
        rows = [(namespace, k, orjson.dumps(v).decode()) for k, v in items]

        def run() -> int:
            conn = _connect(self.path)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_KV_UPSERT, rows)
                evicted = 0
                if keep is not None:
                    evicted = conn.execute(_KV_KEEP, (namespace, namespace, keep)).rowcount
                conn.execute("COMMIT")
                return evicted
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()

        return await asyncio.to_thread(run)

    async def kv_page(
        self,
        namespace: str,
        *,
        limit: int,
        offset: int = 0,
        descending: bool = False,
        field: str | None = None,
        values: Collection[str] | None = None,
    ) -> list[tuple[str, Any]]:
        sql = "SELECT key, value FROM kv WHERE namespace = ?"
        params: list[Any] = [namespace]
        if field is not None and values is not None:
            if not field.isidentifier():
                raise ValueError(f"not a plain field name: {field!r}")
            if not values:
                return []
            sql += f" AND json_extract(value, '$.{field}') IN ({', '.join('?' * len(values))})"
            params += list(values)
        sql += f" ORDER BY key {'DESC' if descending else 'ASC'} LIMIT ? OFFSET ?"
        params += [limit, offset]

        def run(conn: sqlite3.Connection) -> list[tuple[str, Any]]:
            return [(k, orjson.loads(v)) for k, v in conn.execute(sql, params)]

        return await self._read(run)

    async def _kv_write(self, sql: str, params: tuple[Any, ...]) -> bool:
        # Small documents change rarely; a separate short connection keeps them out of the
        # entity writer's queue while SQLite's own locking serialises the two writers.
        def run() -> bool:
            conn = _connect(self.path)
            try:
                return conn.execute(sql, params).rowcount > 0
            finally:
                conn.close()

        return await asyncio.to_thread(run)


def _entity(row: Sequence[Any]) -> Entity:
    eid, types, scopes, created, modified, doc = row[-6:]
    return entity_from_row(
        eid,
        orjson.loads(types),
        orjson.loads(scopes) if scopes else None,
        created,
        modified,
        orjson.loads(doc),
    )


def _aggregate_attributes(rows: Any) -> list[AttributeInfo]:
    types_of: dict[str, set[str]] = {}
    kinds_of: dict[str, set[str]] = {}
    entities_of: dict[str, set[int]] = {}
    for attr, pk, types, kind in rows:
        types_of.setdefault(attr, set()).update(orjson.loads(types))
        if kind:
            kinds_of.setdefault(attr, set()).add(kind)
        entities_of.setdefault(attr, set()).add(pk)
    return [
        AttributeInfo(a, sorted(types_of[a]), sorted(kinds_of.get(a, ())), len(entities_of[a]))
        for a in sorted(types_of)
    ]
