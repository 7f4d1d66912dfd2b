"""The PostgreSQL + PostGIS storage engine (see ``nakhon.storage.base`` for the contract).

Writes go through one :class:`~.writer.Writer` task (group commit); reads use the asyncpg pool
concurrently. ``schema`` puts every table in a schema of its own, so several deployments (or
test sessions) can share one database.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

import asyncpg

from nakhon.broker.model import Entity
from nakhon.core.errors import BadRequestData
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

from . import history
from . import query as sqlq
from .codec import ENTITY_COLUMNS, init_connection, row_to_entity
from .schema import migrate
from .writer import Writer

_GET_SQL = f"SELECT {ENTITY_COLUMNS} FROM entities e WHERE e.tenant = $1 AND e.id = $2"
# COALESCE: asyncpg sends None as SQL NULL; store it as JSON null like SQLite does.
_KV_UPSERT = (
    "INSERT INTO kv (namespace, key, value) VALUES ($1, $2, COALESCE($3, 'null'::jsonb))"
    " ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value"
)


class PostgresStorage:
    """PostgreSQL + PostGIS implementation of :class:`nakhon.storage.base.Storage`."""

    def __init__(
        self,
        dsn: str,
        *,
        write_batch_max: int = 512,
        schema: str | None = None,
        pool_max: int = 10,
        history: bool = True,
    ) -> None:
        """``dsn``: a libpq URL; ``write_batch_max``: most ops grouped in one transaction
        (one caller's ops are never split); ``schema``: own schema for all tables (created if
        missing); ``history``: append attribute instances to ``attr_history``."""
        if write_batch_max < 1:
            raise ValueError("write_batch_max must be at least 1")
        self._ordered_pool: asyncpg.Pool | None = None
        self.dsn = dsn
        self.schema = schema
        self.write_batch_max = write_batch_max
        self._pool_max = pool_max
        self._history = history
        self._pool: asyncpg.Pool | None = None
        self._writer: Writer | None = None
        # Transaction hooks (nakhon.storage.hooks); append before or after open().
        self.write_hooks: list[WriteHook] = []
        self._tenants: set[str] = {DEFAULT_TENANT}
        self.search_path = ""
        self.migrations_applied: list[int] = []

    # -- life cycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create or migrate the schema, start the writer."""
        if self._pool is not None:
            return
        conn = await asyncpg.connect(self.dsn)
        try:
            self.search_path, self.migrations_applied = await migrate(conn, self.schema)
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=2,
            max_size=self._pool_max,
            init=init_connection,
            server_settings={
                "search_path": self.search_path,
                "application_name": "nakhon",
                # JIT compilation costs tens of milliseconds and only pays off for long
                # analytical queries; ours are short, and aggregate ones over tens of thousands
                # of rows would otherwise cross the cost threshold and get slower.
                "jit": "off",
            },
        )
        # Pages are read from a second small pool whose sessions walk indexes in order
        # (see _fetch_ordered): the settings live in the session, so a page costs one round
        # trip instead of BEGIN / SET LOCAL / SELECT / COMMIT.
        self._ordered_pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=max(2, self._pool_max // 2),
            init=init_connection,
            server_settings={
                "search_path": self.search_path,
                "application_name": "nakhon-pages",
                "jit": "off",
                "enable_sort": "off",
                "enable_bitmapscan": "off",
            },
        )
        self._writer = Writer(
            self._pool,
            batch_max=self.write_batch_max,
            history=self._history,
            hooks=self.write_hooks,
        )
        self._writer.start()

    async def close(self) -> None:
        """Drain the writer and close connections."""
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._ordered_pool is not None:
            await self._ordered_pool.close()
            self._ordered_pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresStorage is not open")
        return self._pool

    @property
    def writer(self) -> Writer:
        if self._writer is None:
            raise RuntimeError("PostgresStorage is not open")
        return self._writer

    # -- entities --------------------------------------------------------------------------

    async def write(self, ops: Sequence[WriteOp]) -> list[Outcome | Exception]:
        """Apply ``ops`` in one transaction, grouped with other callers' ops (group commit)."""
        if not ops:
            return []
        return await self.writer.submit(ops)

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        row = await self.pool.fetchrow(_GET_SQL, tenant, entity_id)
        return row_to_entity(row) if row is not None else None

    async def query(self, tenant: str, query: EntityQuery) -> QueryPage:
        """Entities matching ``query``, ordered by id, paged; count if asked.

        The page and the count run concurrently on two pooled connections."""
        page = sqlq.page_sql(tenant, query)
        count_job = None
        if query.count:
            counted = sqlq.count_sql(tenant, query)
            count_job = asyncio.ensure_future(self._fetchval(counted.sql, counted.params))
        indexed = query.geo is not None or query.ids is not None  # the planner's plan is right
        fetch = self._fetch if indexed else self._fetch_ordered
        try:
            rows: list[asyncpg.Record] = []
            if query.limit > 0:
                rows = await fetch(page.sql, page.params)
            total = int(await count_job) if count_job is not None else None
        finally:
            if count_job is not None and not count_job.done():
                count_job.cancel()
        return QueryPage([row_to_entity(r) for r in rows], total)

    async def _fetch(self, sql: str, params: list[Any]) -> list[asyncpg.Record]:
        try:
            return list(await self.pool.fetch(sql, *params))
        except asyncpg.exceptions.InvalidRegularExpressionError as exc:
            raise BadRequestData(f"Invalid idPattern: {exc}") from exc

    async def _fetch_ordered(self, sql: str, params: list[Any]) -> list[asyncpg.Record]:
        """A page without geo or id filters: walk the (tenant, id) index in id order and stop
        at the page end.

        The planner cannot estimate the selectivity of q's jsonb subqueries or of the type
        array test (it guesses a handful of rows), so it prefers to filter every entity of the
        tenant through the GIN index and sort them all: 140 ms for the first page of a
        100,000-entity type. Walking the covering (tenant, id) index in order reads only up
        to the page end (a few ms; ~20 ms at offset 100,000). The cost: a rare type in a very
        large tenant walks more index entries than the GIN index would have read."""
        assert self._ordered_pool is not None, "PostgresStorage is not open"
        try:
            return list(await self._ordered_pool.fetch(sql, *params))
        except asyncpg.exceptions.InvalidRegularExpressionError as exc:
            raise BadRequestData(f"Invalid idPattern: {exc}") from exc

    async def _fetchval(self, sql: str, params: list[Any]) -> Any:
        try:
            return await self.pool.fetchval(sql, *params)
        except asyncpg.exceptions.InvalidRegularExpressionError as exc:
            raise BadRequestData(f"Invalid idPattern: {exc}") from exc

    # -- tenants and introspection -----------------------------------------------------------

    async def tenant_exists(self, tenant: str) -> bool:
        if tenant in self._tenants:
            return True
        found = await self.pool.fetchval("SELECT true FROM tenants WHERE name = $1", tenant)
        if found:
            # Tenants are never removed, so a positive answer can be cached for good.
            self._tenants.add(tenant)
        return bool(found)

    async def list_types(self, tenant: str) -> list[TypeInfo]:
        async with self.pool.acquire() as conn:
            counts = await conn.fetch(sqlq.TYPE_COUNTS_SQL, tenant)
            pairs = await conn.fetch(sqlq.TYPE_ATTRS_SQL, tenant)
        attrs: dict[str, list[str]] = defaultdict(list)
        for row in pairs:
            attrs[row["type"]].append(row["attr"])
        return [
            TypeInfo(type=r["type"], attributes=sorted(attrs.get(r["type"], [])), count=r["n"])
            for r in sorted(counts, key=lambda r: str(r["type"]))
        ]

    async def list_attributes(self, tenant: str) -> list[AttributeInfo]:
        async with self.pool.acquire() as conn:
            kinds = await conn.fetch(sqlq.ATTR_KINDS_SQL, tenant)
            pairs = await conn.fetch(sqlq.TYPE_ATTRS_SQL, tenant)
        types: dict[str, set[str]] = defaultdict(set)
        for row in pairs:
            types[row["attr"]].add(row["type"])
        return [
            AttributeInfo(
                name=r["attr"],
                types=sorted(types[r["attr"]]),
                attribute_types=sorted(k for k in r["kinds"] if k is not None),
                count=r["n"],
            )
            for r in sorted(kinds, key=lambda r: str(r["attr"]))
        ]

    # -- temporal history (nakhon.storage.history_base; SQL in postgres/history.py) ----------

    async def history_instances(self, query: InstanceQuery) -> list[StoredInstance]:
        return await history.instances(self.pool, query)

    async def history_aggregate(self, query: AggregateQuery) -> list[AggregateRow]:
        return await history.aggregate(self.pool, query)

    async def history_entities(self, tenant: str, entity_ids: Sequence[str]) -> set[str]:
        return await history.entities_with_history(self.pool, tenant, entity_ids)

    async def history_attrs(self, tenant: str, entity_ids: Sequence[str]) -> dict[str, list[str]]:
        return await history.attrs_of(self.pool, tenant, entity_ids)

    async def history_deleted(self, query: DeletedQuery) -> list[DeletedEntity]:
        return await history.deleted_entities(self.pool, query)

    async def history_value_histogram(self, query: HistogramQuery) -> list[HistogramRow]:
        return await history.value_histogram(self.pool, query)

    async def history_state_durations(self, query: StateQuery) -> list[StateRow]:
        return await history.state_durations(self.pool, query)

    async def history_value_drops(self, query: DropQuery) -> list[DropRow]:
        return await history.value_drops(self.pool, query)

    async def history_mark(self) -> int:
        return await history.mark(self.pool)

    async def history_written_after(self, query: WrittenQuery) -> set[int]:
        return await history.written_after(self.pool, query)

    async def history_get(
        self, tenant: str, entity_id: str, attr: str, hid: int
    ) -> StoredInstance | None:
        return await history.get_instance(self.pool, tenant, entity_id, attr, hid)

    async def history_delete(
        self,
        tenant: str,
        entity_id: str,
        attr: str | None = None,
        *,
        dataset_id: str | None = None,
        all_datasets: bool = True,
    ) -> int:
        return await history.delete_history(
            self.pool, tenant, entity_id, attr, dataset_id, all_datasets
        )

    async def history_replace(
        self, tenant: str, entity_id: str, attr: str, hid: int, instance: Any
    ) -> bool:
        return await history.replace_instance(self.pool, tenant, entity_id, attr, hid, instance)

    async def history_delete_instance(
        self, tenant: str, entity_id: str, attr: str, hid: int
    ) -> bool:
        return await history.delete_instance(self.pool, tenant, entity_id, attr, hid)

    async def history_prune(
        self, selector: Selector, before: Any, shadowed: Sequence[Selector]
    ) -> int:
        return await history.prune(self.pool, selector, before, shadowed)

    # -- small documents ---------------------------------------------------------------------

    async def kv_get(self, namespace: str, key: str) -> Any | None:
        return await self.pool.fetchval(
            "SELECT value FROM kv WHERE namespace = $1 AND key = $2", namespace, key
        )

    async def kv_put(self, namespace: str, key: str, value: Any) -> None:
        await self.pool.execute(_KV_UPSERT, namespace, key, value)

    async def kv_put_many(
        self, namespace: str, items: Sequence[tuple[str, Any]], *, keep: int | None = None
    ) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(_KV_UPSERT, [(namespace, k, v) for k, v in items])
            if keep is None:
                return 0
            status = await conn.execute(
                # Everything up to the (keep + 1)-th newest key (nothing when there are fewer).
                "DELETE FROM kv WHERE namespace = $1 AND key <= (SELECT key FROM kv"
                " WHERE namespace = $1 ORDER BY key DESC LIMIT 1 OFFSET $2)",
                namespace,
                keep,
            )
            return int(status.split()[-1])

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
        order = "DESC" if descending else "ASC"
        if field is None or values is None:
            rows = await self.pool.fetch(
                f"SELECT key, value FROM kv WHERE namespace = $1 ORDER BY key {order}"
                " LIMIT $2 OFFSET $3", namespace, limit, offset)
        else:
            rows = await self.pool.fetch(
                "SELECT key, value FROM kv WHERE namespace = $1 AND value ->> $2 = ANY($3::text[])"
                f" ORDER BY key {order} LIMIT $4 OFFSET $5",
                namespace, field, list(values), limit, offset)
        return [(r["key"], r["value"]) for r in rows]

    async def kv_delete(self, namespace: str, key: str) -> bool:
        status = await self.pool.execute(
            "DELETE FROM kv WHERE namespace = $1 AND key = $2", namespace, key
        )
        return bool(status != "DELETE 0")

    async def kv_list(self, namespace: str) -> dict[str, Any]:
        rows = await self.pool.fetch(
            "SELECT key, value FROM kv WHERE namespace = $1 ORDER BY key", namespace
        )
        return {r["key"]: r["value"] for r in rows}
