"""Group commit: one writer task turns the operations of many callers into one transaction.

Per batch: one ``SELECT … FOR UPDATE`` reads every touched entity, the mutations run in Python in
queue order (a later operation on an entity sees the earlier one's result), then a handful of
set-based statements write everything (``unnest`` arrays for upserts, deletes and geo rows,
binary ``COPY`` for history), and only after COMMIT does any caller get its answer.

History rows carry the integer id of their series (``history_series``: tenant, entity,
attribute), from a per-writer cache; the series a transaction is missing are found or created
by one statement in that transaction, and enter the cache only once it has committed.

Transaction hooks (``nakhon.storage.hooks``) get the batch's changes after the mutations ran
and their rows are inserted into their tables in the same transaction, by the first entity
statement (data-modifying CTEs: no round trip of their own).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from nakhon.broker.model import Entity, Instance
from nakhon.core.errors import BadRequestData, NgsiError
from nakhon.storage.base import Outcome, WriteOp
from nakhon.storage.hooks import Change, HookRows, WriteHook
from nakhon.storage.rows import deletion_markers, geo_unchanged

from .codec import (
    HISTORY_COLUMNS,
    SeriesKey,
    geo_rows,
    geo_values,
    history_source,
    now_iso,
    row_to_entity,
)
from .entity_sql import (
    DELETE,
    GEO_DELETE,
    GEO_INSERT,
    INSERT,
    SELECT_FOR_UPDATE,
    TENANTS,
    UPDATE,
)
from .series import SeriesCache

log = logging.getLogger(__name__)

Key = tuple[str, str]

# Errors after which re-running the whole batch on fresh state is correct: another process
# created one of "our" new entities first, or two processes locked rows in opposite order.
_RETRYABLE = (
    asyncpg.exceptions.UniqueViolationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
_MAX_RETRIES = 5
_HOOK_LOCK = 0x6E616B686F6F  # "nakhoo": the advisory lock around hook rows (see _run_sql)

@dataclass(slots=True)
class Pending:
    """One caller's operations and the future its ``write`` awaits."""

    ops: Sequence[WriteOp]
    future: asyncio.Future[list[Outcome | Exception]]


@dataclass(slots=True)
class _Slot:
    """The state of one (tenant, id) while a batch is applied."""

    pk: int | None  # row in the database at the start of the batch, if any
    initial: Entity | None
    current: Entity | None
    dirty: bool = False


@dataclass(slots=True)
class _Plan:
    results: list[Outcome | Exception] = field(default_factory=list)
    slots: dict[Key, _Slot] = field(default_factory=dict)
    now: str = ""
    # (tenant, entity id, the (attribute, instance) pairs to append to its history)
    history: list[tuple[str, str, list[tuple[str, Instance]]]] = field(default_factory=list)
    # Series ids found or created in this transaction: cached only after it commits.
    learnt: dict[SeriesKey, int] = field(default_factory=dict)
    tenants: set[str] = field(default_factory=set)
    # EWKB rows of the latest geo state per key, computed (and validated) once in _apply.
    geo: dict[Key, list[tuple[str, bytes]]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)


class Writer:
    """The single writer task of one engine."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        batch_max: int,
        history: bool = True,
        hooks: Sequence[WriteHook] = (),
    ) -> None:
        self._pool = pool
        self._batch_max = batch_max
        self._history = history
        # Kept by reference: hooks the engine registers after open() are seen too.
        self._hooks = hooks
        self._hook_col_types: dict[str, dict[str, str]] = {}  # hook table → column → type
        self._queue: asyncio.Queue[Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._known_tenants: set[str] = set()
        self._sids = SeriesCache()  # (tenant, entity id, attr) → history_series.sid
        self.batches = 0  # statistics, for tests and benchmarks
        self.ops_written = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="nakhon-pg-writer")

    async def stop(self) -> None:
        """Finish everything queued so far, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None

    async def submit(self, ops: Sequence[WriteOp]) -> list[Outcome | Exception]:
        if self._task is None or self._task.done():
            raise RuntimeError("PostgresStorage is not open")
        future: asyncio.Future[list[Outcome | Exception]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.put_nowait(Pending(ops, future))
        return await future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            size = len(first.ops)
            # Take whatever else is already waiting: this is the group commit. A caller's ops
            # are never split, so one large caller can exceed batch_max on its own.
            while size < self._batch_max and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
                size += len(nxt.ops)
            try:
                await self._commit_batch(batch)
            except Exception:  # never let the writer die; callers were already answered
                log.exception("postgres writer: unexpected failure")

    async def _commit_batch(self, batch: list[Pending]) -> None:
        try:
            results = await self._commit_with_retry([op for p in batch for op in p.ops])
        except asyncpg.PostgresError as exc:
            if len(batch) == 1:
                if isinstance(exc, asyncpg.DataError) and len(batch[0].ops) > 1:
                    await self._commit_ops_alone(batch[0])
                    return
                _fail(batch, _client_error(exc))
                return
            # A server-side error (say a NUL character jsonb refuses) would otherwise fail every
            # caller of the group for one caller's data: run each caller alone instead.
            log.warning("postgres writer: batch failed (%s); retrying callers one by one", exc)
            for pending in batch:
                await self._commit_batch([pending])
            return
        except Exception as exc:  # connection lost etc.: nobody's ops were committed
            _fail(batch, exc)
            return
        i = 0
        for pending in batch:
            n = len(pending.ops)
            if not pending.future.done():
                pending.future.set_result(results[i : i + n])
            i += n

    async def _commit_ops_alone(self, pending: Pending) -> None:
        """One caller's operations, each in a transaction of its own: a value PostgreSQL refuses
        (a data exception, SQLSTATE class 22) fails only its own operation, as BadRequestData,
        instead of every operation of the caller (an ingest batch would be retried forever)."""
        results: list[Outcome | Exception] = []
        try:
            for op in pending.ops:
                try:
                    results.extend(await self._commit_with_retry([op]))
                except asyncpg.DataError as exc:
                    results.append(_client_error(exc))
        except Exception as exc:  # connection lost etc. midway: the caller retries all
            _fail([pending], exc)
            return
        if not pending.future.done():
            pending.future.set_result(results)

    async def _commit_with_retry(self, ops: list[WriteOp]) -> list[Outcome | Exception]:
        for attempt in range(_MAX_RETRIES):
            try:
                return await self._commit(ops)
            except _RETRYABLE:
                if attempt == _MAX_RETRIES - 1:
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _commit(self, ops: list[WriteOp]) -> list[Outcome | Exception]:
        now = now_iso()
        async with self._pool.acquire() as conn, conn.transaction():
            keys = list(dict.fromkeys((op.tenant, op.entity_id) for op in ops))
            rows = await conn.fetch(SELECT_FOR_UPDATE, [k[0] for k in keys], [k[1] for k in keys])
            plan = _Plan(now=now)
            for key in keys:
                plan.slots[key] = _Slot(None, None, None)
            for row in rows:
                entity = row_to_entity(row)
                plan.slots[(row["tenant"], row["id"])] = _Slot(row["pk"], entity, entity)
            self._apply(ops, now, plan)
            hook_rows = [block for hook in self._hooks for block in
                         hook.rows(plan.changes, now) if block.rows] if plan.changes else []
            # The hook rows ride on the first entity statement (no round trip of their own).
            await self._write(conn, plan, hook_rows)
            if hook_rows:  # no entity statement ran (cannot happen with changes; kept safe)
                await self._run_sql(conn, "SELECT 1", [], hook_rows)
        for hook in self._hooks:
            try:
                hook.committed()
            except Exception:  # a wake-up must never fail a batch that has committed
                log.exception("write hook failed after commit")
        self.batches += 1
        self.ops_written += len(ops)
        self._known_tenants |= plan.tenants
        self._sids.committed(plan.learnt)
        return plan.results

    async def _run_sql(self, conn: asyncpg.Connection, sql: str, args: list[Any],
                       hook_rows: list[HookRows], *, fetch: bool = False) -> Any:
        """Run one statement; pending hook rows (then cleared) are inserted by the same
        statement, in data-modifying CTEs, after taking the advisory lock.

        Hook tables' generated keys (the outbox seq) must follow commit order, also across
        processes, so the tails of such transactions are serialised: the lock is held from here
        to COMMIT. It is taken in a materialised CTE that each insert joins, so it is held
        before the first key is generated."""
        if hook_rows:
            n = len(args)
            ctes = [f"nakhon_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(${n + 1}))"]
            args = [*args, _HOOK_LOCK]
            for k, block in enumerate(hook_rows):
                types = await self._hook_types(conn, block)
                arrays = []
                for col, values in zip(block.columns, zip(*block.rows, strict=True),
                                       strict=True):
                    args.append(list(values))
                    arrays.append(f"${len(args)}::{types[col]}[]")
                ctes.append(f"nakhon_hook{k} AS (INSERT INTO {block.table}"
                            f" ({', '.join(block.columns)}) SELECT u.* FROM nakhon_lock,"
                            f" unnest({', '.join(arrays)}) AS u)")
            sql = f"WITH {', '.join(ctes)} {sql}"
            hook_rows.clear()
        if fetch:
            return await conn.fetch(sql, *args)
        return await conn.execute(sql, *args)

    async def _hook_types(self, conn: asyncpg.Connection, block: HookRows) -> dict[str, str]:
        """The SQL types of a hook table's columns (asked once per table)."""
        types = self._hook_col_types.get(block.table)
        if types is None:
            got = await conn.fetch(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
                block.table)
            types = self._hook_col_types[block.table] = {r[0]: r[1] for r in got}
        return types

    def _apply(self, ops: list[WriteOp], now: str, plan: _Plan) -> None:
        """Run the mutations in order on the in-memory state (no I/O)."""
        for op in ops:
            slot = plan.slots[(op.tenant, op.entity_id)]
            try:
                outcome = op.mutate(slot.current, now)
                rows: list[tuple[str, bytes]] | None = None
                if not outcome.unchanged:
                    if not outcome.deleted and outcome.entity is None:
                        # Would otherwise read as a delete; refuse this op only.
                        raise ValueError("mutation returned neither an entity nor deleted")
                    new = None if outcome.deleted else outcome.entity
                    # Geometry is converted before the state moves, so a bad one fails only
                    # this operation (see codec.geo_rows).
                    if new is not None and not geo_unchanged(slot.current, new, geo_values):
                        rows = geo_rows(new)
            except Exception as exc:  # NgsiError by contract; anything else is a bug, isolated
                if not isinstance(exc, NgsiError):
                    log.exception("mutation for %r raised", op.entity_id)
                plan.results.append(exc)
                continue
            plan.results.append(outcome)
            if outcome.unchanged:
                continue
            if rows is not None:
                plan.geo[(op.tenant, op.entity_id)] = rows
            if outcome.previous is None and not outcome.created:
                outcome.previous = slot.current  # hooks rely on it (showChanges, triggers)
            plan.changes.append((op.tenant, op.entity_id, outcome))
            slot.current = None if outcome.deleted else outcome.entity
            slot.dirty = True
            if op.tenant and op.tenant not in self._known_tenants:
                plan.tenants.add(op.tenant)
            if self._history and (outcome.changed or outcome.removed or outcome.deleted):
                # Temporal history: every (attribute, instance) written, same transaction,
                # and a marker for every instance (or entity) deleted.
                written = outcome.changed
                if outcome.removed or outcome.deleted:
                    written = [*written, *deletion_markers(outcome, now)]
                plan.history.append((op.tenant, op.entity_id, written))

    async def _write(self, conn: asyncpg.Connection, plan: _Plan,
                     hook_rows: list[HookRows]) -> None:
        """Write the batch's net effect with a fixed, small number of statements (the first
        one also inserts ``hook_rows``, see :meth:`_run_sql`)."""
        inserts: list[tuple[Key, Entity]] = []
        updates: list[tuple[int, Entity]] = []
        deletes: list[int] = []
        geo_changed: list[tuple[Key, Entity]] = []
        for key, slot in plan.slots.items():
            if not slot.dirty:
                continue
            if slot.current is None:
                if slot.pk is not None:
                    deletes.append(slot.pk)
                continue
            if slot.pk is None:
                inserts.append((key, slot.current))
            else:
                updates.append((slot.pk, slot.current))
            if not geo_unchanged(slot.initial, slot.current, geo_values):
                geo_changed.append((key, slot.current))

        pks: dict[Key, int] = {k: s.pk for k, s in plan.slots.items() if s.pk is not None}
        if deletes:
            await self._run_sql(conn, DELETE, [deletes], hook_rows)
        if updates:
            await self._run_sql(conn, UPDATE, [
                [pk for pk, _ in updates],
                [_encode_types(e.types) for _, e in updates],
                [_encode_types(e.scope) for _, e in updates],
                [e.created_at for _, e in updates],
                [e.modified_at for _, e in updates],
                [e.doc() for _, e in updates],
            ], hook_rows)
        if inserts:
            got = await self._run_sql(conn, INSERT, [
                [k[0] for k, _ in inserts],
                [k[1] for k, _ in inserts],
                [_encode_types(e.types) for _, e in inserts],
                [_encode_types(e.scope) for _, e in inserts],
                [e.created_at for _, e in inserts],
                [e.modified_at for _, e in inserts],
                [e.doc() for _, e in inserts],
            ], hook_rows, fetch=True)
            pks.update({(r["tenant"], r["id"]): r["pk"] for r in got})
        if geo_changed:
            changed_pks = [pks[k] for k, _ in geo_changed]
            await conn.execute(GEO_DELETE, changed_pks)
            g_pk: list[int] = []
            g_attr: list[str] = []
            g_wkb: list[bytes] = []
            for key, entity in geo_changed:
                for attr, wkb in plan.geo.get(key) or geo_rows(entity):
                    g_pk.append(pks[key])
                    g_attr.append(attr)
                    g_wkb.append(wkb)
            if g_pk:
                await conn.execute(GEO_INSERT, g_pk, g_attr, g_wkb)
        if plan.tenants:
            await conn.execute(TENANTS, sorted(plan.tenants))
        if plan.history:
            keys = ((tenant, entity_id, attr) for tenant, entity_id, written in plan.history
                    for attr in {attr for attr, _ in written})
            sids, plan.learnt = await self._sids.resolve(conn, keys)
            try:
                source = history_source(plan.history, sids, plan.now)
                await conn.copy_to_table("attr_history", source=source,
                                         columns=HISTORY_COLUMNS, format="binary")
            except (TypeError, ValueError, OverflowError) as exc:  # JSON, UTF-8 or float8 can't
                # As when asyncpg encoded the rows: a data error, so each op is retried alone
                # and only the offending one fails, as BadRequestData (_commit_batch).
                raise asyncpg.exceptions.DataError(f"history row: {exc}") from exc


def _encode_types(values: list[str] | None) -> str | None:
    """A Python list → PostgreSQL array literal text (cast to text[] in SQL).

    Passing each entity's list as one text element of a 1-D array sidesteps the rule that a
    ``text[][]`` parameter must be rectangular (entities differ in their number of types).
    """
    if values is None:
        return None
    return (
        "{"
        + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
        + "}"
    )


def _client_error(exc: Exception) -> Exception:
    """A data exception PostgreSQL raised for a value (SQLSTATE class 22) is the client's
    mistake: BadRequestData, not a server error. Anything else is returned unchanged."""
    if isinstance(exc, asyncpg.DataError):
        return BadRequestData(f"A value cannot be stored: {exc}")
    return exc


def _fail(batch: list[Pending], exc: Exception) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)
