"""Recent values for windowed and rate alert rules, warmed from the stored temporal history.

A 24-hour PM2.5 rule needs 18 of the last 24 hours. :class:`MemoryHistory` alone learns them only
from the changes it sees, so after a restart — or in a city whose history was backfilled rather
than written change by change, like the demo — such a rule stays silent for most of a day.
:class:`StoredHistory` keeps the same bounded in-memory series, but the first time a series is
asked for it reads the window from the attribute history every engine keeps (one indexed query
per series, once per process), then goes on from memory.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta

from nakhon.domains.alert_service import MemoryHistory
from nakhon.domains.alerts import numeric
from nakhon.domains.averaging import Sample
from nakhon.storage.history_base import HistoryStore, InstanceQuery, TimeWindow, is_marker

_Key = tuple[str, str, str]


class StoredHistory(MemoryHistory):
    """:class:`MemoryHistory` that loads a series' recent window from ``storage`` on first use.

    ``storage`` is the platform's storage engine (both engines implement the history reads).
    Values are read by ``observedAt`` (else the modification time), as the rules see them."""

    def __init__(self, storage: HistoryStore, *, horizon: timedelta = timedelta(hours=25),
                 max_series: int = 200_000, max_points: int = 2_000) -> None:
        super().__init__(horizon, max_series, max_points)
        self.storage = storage
        self._warm: set[_Key] = set()
        self.loaded = 0  # series read from storage (for tests and metrics)

    async def recent(
        self, tenant: str, entity_id: str, attr_iri: str, since: datetime
    ) -> list[Sample]:
        key = (tenant, entity_id, attr_iri)
        if key not in self._warm or key not in self._series:
            await self._load(key)
        return await super().recent(tenant, entity_id, attr_iri, since)

    async def _load(self, key: _Key) -> None:
        tenant, entity_id, attr_iri = key
        start = datetime.now(UTC) - self.horizon
        known = self._series.get(key)
        if known:  # what the feed saw before the first question may be older than "now"
            start = min(start, known[-1][0] - self.horizon)
        rows = await self.storage.history_instances(InstanceQuery(
            tenant, [(entity_id, attr_iri)], TimeWindow("observedAt", start, None),
            limit=self.max_points, newest_first=True))
        stored: dict[datetime, float] = {}
        for row in rows:
            value = numeric(row.instance)
            if (row.time is None or value is None or is_marker(row.instance)
                    or "datasetId" in row.instance):
                continue
            stored[row.time] = value
        if len(self._warm) >= 4 * self.max_series:
            self._warm.clear()  # bounded: series forgotten here are simply read again
        self._warm.add(key)
        self.loaded += 1
        if not stored:
            return
        merged = dict(stored)
        merged.update(known or ())  # what was observed in memory wins over the stored copy
        points = sorted(merged.items())[-self.max_points:]
        series = self._series.get(key)
        if series is None:
            self._series[key] = series = deque(maxlen=self.max_points)
            if len(self._series) > self.max_series:
                self._series.popitem(last=False)
        series.clear()
        series.extend(points)
