"""The periodic KPI task started from the app's lifespan.

Every ``interval`` minutes it runs :func:`~nakhon.kpi.service.recompute_kpis` for each known
tenant: the default tenant, tenants the engine has computed for before (kv ``kpi-state``) and
the tenants named in the ``kpi_tenants`` setting. Work happens out of the request path
(DESIGN "work out of the request path"); one tenant's failure is logged and the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib

from nakhon.broker.service import Broker
from nakhon.core.logs import get_logger
from nakhon.kpi.service import recompute_kpis
from nakhon.kpi.store import known_tenants

log = get_logger("nakhon.kpi.task")


class KpiMonitor:
    """Recomputes every known tenant's KPIs periodically, until stopped."""

    def __init__(
        self, broker: Broker, *, interval_minutes: float, late_days: int, tenants: str = ""
    ) -> None:
        self.broker = broker
        self.interval_minutes = interval_minutes
        self.late_days = late_days
        self.extra = [t.strip() for t in tenants.split(",") if t.strip()]
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (nothing when the interval is 0: KPIs are then computed on demand)."""
        if self._task is None and self.interval_minutes > 0:
            self._task = asyncio.create_task(self._run(), name="nakhon-kpi-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def tenants(self) -> list[str]:
        return sorted({"", *self.extra, *await known_tenants(self.broker.storage)})

    async def run_once(self) -> int:
        """One pass over every known tenant; returns how many KPI periods were written."""
        written = 0
        for tenant in await self.tenants():
            try:
                result = await recompute_kpis(
                    self.broker,
                    tenant,
                    late_days=self.late_days,
                    interval_minutes=self.interval_minutes,
                )
                written += result.periods_written
            except Exception:
                log.exception("KPI recomputation failed", tenant=tenant)
        return written

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_minutes * 60)
            await self.run_once()
