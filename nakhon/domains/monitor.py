"""The periodic alert task started from the app's lifespan: absence-of-data sweeps.

Threshold and rate rules are evaluated when entities change (:func:`evaluate_alerts`, called
after commit by whoever consumes changes); silence produces no change, so absence rules need a
clock. Every ``interval`` seconds the monitor sweeps each known tenant: the default tenant,
tenants with stored alert rules, and tenants seen by :func:`evaluate_alerts`.
"""

from __future__ import annotations

import asyncio
import contextlib

from nakhon.broker.service import Broker
from nakhon.core.logs import get_logger
from nakhon.domains.alert_service import RULES_NAMESPACE, known_tenants, sweep_absence

log = get_logger("nakhon.domains.monitor")
DEFAULT_INTERVAL = 60.0
"""Seconds between sweeps: well under the shortest sensible silence (minutes)."""


class AlertMonitor:
    """Runs :func:`sweep_absence` for every known tenant, periodically, until stopped."""

    def __init__(self, broker: Broker, interval: float = DEFAULT_INTERVAL) -> None:
        self.broker = broker
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="nakhon-alert-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def tenants(self) -> list[str]:
        stored = await self.broker.storage.kv_list(RULES_NAMESPACE)
        return sorted(known_tenants() | set(stored))

    async def sweep_once(self) -> int:
        """One sweep over every known tenant; returns how many alerts changed."""
        changed = 0
        for tenant in await self.tenants():
            try:
                changed += len(await sweep_absence(self.broker, tenant))
            except Exception:
                # One tenant's bad state must not stop alerts for the others.
                log.exception("absence sweep failed", tenant=tenant)
        return changed

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.sweep_once()
