"""The retention sweep inside the running platform (``nakhon temporal prune`` does it once).

When ``NAKHON_TEMPORAL_RETENTION`` holds rules, the app prunes history every
``NAKHON_TEMPORAL_PRUNE_INTERVAL`` seconds, so a city's storage stays bounded without a cron
job. A failing sweep is logged and retried at the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from nakhon.core.auth import SYSTEM, Access
from nakhon.core.logs import get_logger
from nakhon.temporal.retention import RetentionRule, prune

log = get_logger("nakhon.temporal.retention")


class RetentionTask:
    """Runs :func:`prune` periodically with the configured rules (nothing when none)."""

    def __init__(
        self, storage: object, access: Access, rules: list[RetentionRule], interval: float
    ) -> None:
        self.storage = storage
        self.access = access
        self.rules = rules
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.rules and self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="nakhon-retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sweep(self) -> int:
        """One pruning pass; returns how many instances were deleted."""
        deleted = await prune(
            self.storage,  # type: ignore[arg-type]
            self.access,
            SYSTEM,
            self.rules,
            datetime.now(UTC),
        )
        if deleted:
            log.info("history pruned", instances=deleted)
        return deleted

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("history pruning failed")
            await asyncio.sleep(self.interval)
