"""Committed entity changes → alert rules, out of the request path.

:class:`AlertFeed` is a storage write hook that adds no rows: it notes which entities a write
batch changed and, once the batch has committed, hands them to a background task that runs
:func:`~nakhon.domains.alert_service.evaluate_alerts`. Writers never wait for alert rules; a
burst is coalesced (the newest state of each entity is evaluated once) and, past
``max_pending`` queued batches, dropped with a warning — alerts are re-derived from the next
change or the periodic sweep, while the write path stays fast. Windowed and rate rules read
recent values from a :class:`~nakhon.domains.recent.StoredHistory`, so they judge from the
stored history at once after a restart or a backfill.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import cast

from nakhon.broker.model import Entity
from nakhon.broker.service import Broker
from nakhon.core.logs import get_logger
from nakhon.domains.alert_service import evaluate_alerts, is_alert
from nakhon.domains.recent import StoredHistory
from nakhon.storage.history_base import HistoryStore
from nakhon.storage.hooks import Change, HookRows

log = get_logger("nakhon.domains.alert_feed")
Batch = list[tuple[str, Entity]]


class AlertFeed:
    """A write hook feeding committed changes to the alert rules (see the module docstring)."""

    def __init__(self, broker: Broker, *, max_pending: int = 1000) -> None:
        self.broker = broker
        self.max_pending = max_pending
        self.dropped = 0
        self.evaluated = 0
        # Both engines implement the history reads (the Storage protocol does not name them).
        self.history = StoredHistory(cast(HistoryStore, broker.storage))
        self._noted: Batch = []
        self._queue: asyncio.Queue[Batch] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    # --- write hook (runs on the writer's thread or task: cheap, no I/O) --------------------

    def rows(self, changes: Sequence[Change], now: str) -> Sequence[HookRows]:
        self._noted = [
            (tenant, outcome.entity)
            for tenant, _eid, outcome in changes
            if outcome.entity is not None and not is_alert(outcome.entity)
        ]
        return ()

    def committed(self) -> None:
        noted, self._noted = self._noted, []
        if noted and self._loop is not None:
            self._loop.call_soon_threadsafe(self._enqueue, noted)

    def _enqueue(self, batch: Batch) -> None:
        if self._queue.qsize() >= self.max_pending:
            self.dropped += len(batch)
            log.warning("alert evaluation behind, changes skipped", skipped=len(batch))
            return
        self._queue.put_nowait(batch)

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Register as a write hook and start evaluating (call from the app's lifespan)."""
        self._loop = asyncio.get_running_loop()
        hooks = self.broker.storage.write_hooks  # type: ignore[attr-defined]
        hooks.append(self)
        self._task = asyncio.create_task(self._run(), name="nakhon-alert-feed")

    async def stop(self) -> None:
        hooks = self.broker.storage.write_hooks  # type: ignore[attr-defined]
        if self in hooks:
            hooks.remove(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def drain(self) -> None:
        """Wait until every queued change has been evaluated (for tests)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            batches = [await self._queue.get()]
            while not self._queue.empty():
                batches.append(self._queue.get_nowait())
            try:
                await self._evaluate(batches)
            except Exception:
                log.exception("alert evaluation failed")
            finally:
                for _ in batches:
                    self._queue.task_done()

    async def _evaluate(self, batches: list[Batch]) -> None:
        latest: dict[str, dict[str, Entity]] = {}
        for batch in batches:
            for tenant, entity in batch:
                latest.setdefault(tenant, {})[entity.id] = entity
        for tenant, entities in latest.items():
            await evaluate_alerts(self.broker, tenant, list(entities.values()),
                                  history=self.history)
            self.evaluated += len(entities)
