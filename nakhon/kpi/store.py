"""Where the KPI engine keeps its state: storage kv (the contract every engine has).

* ``kpi-rollup`` — day rollups, one document per (tenant, source, month):
  ``{"2024-10-01": {...}, ...}``. A fiscal year is twelve reads per source, however much
  history lies behind it; the run caches what it has read.
* ``kpi-state`` — per tenant: the high-water mark (``hwm``, the ``now`` of the last run; the
  next run rebuilds from that Bangkok day minus ``late_days``) and ``effectiveSince`` per KPI
  entity.
* ``kpi-values`` — per (tenant, KPI): every computed period's value, previous value and
  standing, for trends and the API (no history query needed to list KPIs).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from nakhon.storage.base import Storage

ROLLUP_NS = "kpi-rollup"
STATE_NS = "kpi-state"
VALUES_NS = "kpi-values"


def _month(day: date) -> str:
    return day.strftime("%Y-%m")


class RollupStore:
    """Day rollups of one tenant, read per month and cached for one run."""

    def __init__(self, storage: Storage, tenant: str) -> None:
        self.storage = storage
        self.tenant = tenant
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._dirty: set[tuple[str, str]] = set()

    def _key(self, source: str, month: str) -> str:
        return f"{self.tenant}|{source}|{month}"

    async def month(self, source: str, month: str) -> dict[str, Any]:
        key = (source, month)
        if key not in self._cache:
            doc = await self.storage.kv_get(ROLLUP_NS, self._key(source, month))
            self._cache[key] = doc if isinstance(doc, dict) else {}
        return self._cache[key]

    async def replace(
        self, source: str, days: Iterable[date], docs: dict[date, dict[str, Any]]
    ) -> None:
        """Replace the rollups of ``days`` (a day without a doc is removed: no data)."""
        for day in days:
            month = await self.month(source, _month(day))
            doc = docs.get(day)
            if doc is None:
                if month.pop(day.isoformat(), None) is not None:
                    self._dirty.add((source, _month(day)))
            else:
                month[day.isoformat()] = doc
                self._dirty.add((source, _month(day)))

    async def days(self, source: str, first: date, last: date) -> list[dict[str, Any]]:
        """The rollups of the days in ``[first, last]`` that have one, oldest first."""
        out: list[dict[str, Any]] = []
        y, m = first.year, first.month
        while (y, m) <= (last.year, last.month):
            month = await self.month(source, f"{y:04d}-{m:02d}")
            lo, hi = first.isoformat(), last.isoformat()
            out.extend(month[d] for d in sorted(month) if lo <= d <= hi)
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out

    async def flush(self) -> None:
        for source, month in sorted(self._dirty):
            await self.storage.kv_put(
                ROLLUP_NS, self._key(source, month), self._cache[(source, month)]
            )
        self._dirty.clear()


async def load_state(storage: Storage, tenant: str) -> dict[str, Any]:
    doc = await storage.kv_get(STATE_NS, tenant)
    return doc if isinstance(doc, dict) else {}


async def save_state(storage: Storage, tenant: str, state: dict[str, Any]) -> None:
    await storage.kv_put(STATE_NS, tenant, state)


async def load_values(storage: Storage, tenant: str, kpi_id: str) -> dict[str, Any]:
    doc = await storage.kv_get(VALUES_NS, f"{tenant}|{kpi_id}")
    return doc if isinstance(doc, dict) else {}


async def save_values(storage: Storage, tenant: str, kpi_id: str, doc: dict[str, Any]) -> None:
    await storage.kv_put(VALUES_NS, f"{tenant}|{kpi_id}", doc)


async def known_tenants(storage: Storage) -> list[str]:
    """Tenants the engine has computed for (the periodic task revisits them)."""
    return sorted(await storage.kv_list(STATE_NS))
