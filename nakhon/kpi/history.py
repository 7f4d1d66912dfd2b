"""History reads of the KPI engine, through the storage engines' history methods only.

Kept apart on purpose (the temporal service owns the history contract): everything here goes
through :class:`~nakhon.storage.history_base.IndicatorHistoryStore` (``history_aggregate``,
and the per-day reductions ``history_value_histogram``, ``history_state_durations`` and
``history_value_drops``, all computed in SQL; ``history_instances`` only to find the oldest
instance) and the broker's entity queries — never through tables. Windows
are whole Bangkok days, read in chunks of :data:`CHUNK_DAYS` so a full recompute over a year
never holds a year of rows in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from nakhon.broker.model import Entity
from nakhon.broker.query import Or
from nakhon.broker.service import Broker
from nakhon.core.auth import SYSTEM
from nakhon.core.errors import NonexistentTenant
from nakhon.domains.catalogue import type_iris
from nakhon.kpi.periods import bangkok_date, day_start_utc
from nakhon.storage.base import EntityQuery
from nakhon.storage.history_base import (
    AggregateQuery,
    Buckets,
    ChangeTrackingHistoryStore,
    DropQuery,
    HistogramQuery,
    HistoryStore,
    IndicatorHistoryStore,
    InstanceQuery,
    StateQuery,
    TimeWindow,
    WrittenQuery,
)

CHUNK_DAYS = 7
PER_PAIR_DAY_LIMIT = 50_000
"""Most instances read per (entity, attribute) and day: ~35 a minute, far above any sensor."""

Pair = tuple[str, str]


def local_name(iri: str) -> str:
    """The last path or fragment segment of an IRI (``…/pm25`` → ``pm25``)."""
    return iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def history_store(broker: Broker) -> HistoryStore:
    """The broker's storage as a history store (both engines implement the contract)."""
    store: HistoryStore = broker.storage  # type: ignore[assignment]
    return store


async def entities_of(broker: Broker, tenant: str, type_name: str) -> list[Entity]:
    """Every entity of a catalogue type (both vocabularies), paged at the broker's maximum."""
    iris = type_iris(type_name)
    query = EntityQuery(type_expr=iris[0] if len(iris) == 1 else Or(iris), limit=broker.max_limit)
    found: list[Entity] = []
    while True:
        try:
            page = await broker.query_entities(SYSTEM, tenant, query)
        except NonexistentTenant:
            return []
        found.extend(page.entities)
        if len(page.entities) < query.limit:
            return found
        query.offset += query.limit


def attr_iri(entity: Entity, name: str) -> str | None:
    """The IRI of the entity's attribute called ``name`` in whichever vocabulary it uses."""
    for iri in entity.attrs:
        if iri == name or local_name(iri) == name:
            return iri
    return None


def pairs_for(entities: Sequence[Entity], name: str) -> list[Pair]:
    out: list[Pair] = []
    for entity in entities:
        iri = attr_iri(entity, name)
        if iri is not None:
            out.append((entity.id, iri))
    return out


def chunks(first: date, last: date) -> list[tuple[date, date]]:
    """``[first, last]`` cut into inclusive spans of at most CHUNK_DAYS days."""
    out: list[tuple[date, date]] = []
    start = first
    while start <= last:
        end = min(last, start + timedelta(days=CHUNK_DAYS - 1))
        out.append((start, end))
        start = end + timedelta(days=1)
    return out


@dataclass(slots=True)
class Bucket:
    """One aggregated time bucket of one pair."""

    entity_id: str
    day: date
    hour: int
    count: int
    sum: float | None
    avg: float | None
    min: float | None
    max: float | None


async def aggregates(
    broker: Broker, tenant: str, pairs: Sequence[Pair], first: date, last: date, *, hourly: bool
) -> AsyncIterator[list[Bucket]]:
    """Per-pair aggregates per Bangkok day (or hour), one chunk of days at a time, in SQL."""
    store = history_store(broker)
    methods = frozenset({"totalCount", "sum", "avg", "min", "max"})
    step = 3600 if hourly else 86400
    for start, end in chunks(first, last):
        origin = day_start_utc(start)
        window = TimeWindow("observedAt", origin, day_start_utc(end + timedelta(days=1)))
        rows = await store.history_aggregate(
            AggregateQuery(tenant, pairs, window, Buckets(origin, seconds=step), methods)
        )
        out: list[Bucket] = []
        for row in rows:
            v = row.values
            offset = row.bucket * step
            day = start + timedelta(days=offset // 86400)
            out.append(
                Bucket(
                    row.entity_id,
                    day,
                    (offset % 86400) // 3600,
                    int(v.get("totalCount") or 0),
                    _num(v.get("sum")),
                    _num(v.get("avg")),
                    _num(v.get("min")),
                    _num(v.get("max")),
                )
            )
        yield out


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def change_store(broker: Broker) -> ChangeTrackingHistoryStore:
    """The broker's storage with the history mark (both engines implement it)."""
    store: ChangeTrackingHistoryStore = broker.storage  # type: ignore[assignment]
    return store


async def days_written_after(
    broker: Broker, tenant: str, pairs: Sequence[Pair], first: date, last: date, mark: int
) -> set[date]:
    """The days in ``[first, last]`` holding an instance of the pairs written after ``mark``."""
    if not pairs or first > last:
        return set()
    window, buckets = _span(first, last)
    found = await change_store(broker).history_written_after(
        WrittenQuery(tenant, pairs, window, buckets, mark)
    )
    return {first + timedelta(days=b) for b in found}


def indicator_store(broker: Broker) -> IndicatorHistoryStore:
    """The broker's storage with the indicator reductions (both engines implement them)."""
    store: IndicatorHistoryStore = broker.storage  # type: ignore[assignment]
    return store


def _span(start: date, end: date) -> tuple[TimeWindow, Buckets]:
    """Whole Bangkok days ``[start, end]`` as a window, cut into one-day buckets."""
    origin = day_start_utc(start)
    window = TimeWindow("observedAt", origin, day_start_utc(end + timedelta(days=1)))
    return window, Buckets(origin, seconds=86400)


@dataclass(slots=True)
class DayHistogram:
    n: int
    sum: float
    hist: dict[int, int]


async def day_histograms(
    broker: Broker,
    tenant: str,
    pairs: Sequence[Pair],
    first: date,
    last: date,
    *,
    width: float,
    min_value: float,
) -> dict[date, DayHistogram]:
    """Per day: count, sum and ``floor(value / width)`` histogram of all pairs' numbers."""
    out: dict[date, DayHistogram] = {}
    if not pairs:
        return out
    store = indicator_store(broker)
    for start, end in chunks(first, last):
        window, buckets = _span(start, end)
        rows = await store.history_value_histogram(
            HistogramQuery(tenant, pairs, window, buckets, width, min_value)
        )
        for r in rows:
            day = start + timedelta(days=r.bucket)
            doc = out.setdefault(day, DayHistogram(0, 0.0, {}))
            doc.n += r.count
            doc.sum += r.sum
            doc.hist[r.bin] = doc.hist.get(r.bin, 0) + r.count
    return out


async def day_state_seconds(
    broker: Broker, tenant: str, pairs: Sequence[Pair], first: date, last: date, now: datetime
) -> dict[tuple[str, date], dict[str, float]]:
    """Seconds per (entity, day) and string value: each report holds until the next report
    of the day, the last until the day's end or ``now``."""
    out: dict[tuple[str, date], dict[str, float]] = {}
    if not pairs:
        return out
    store = indicator_store(broker)
    for start, end in chunks(first, last):
        window, buckets = _span(start, end)
        rows = await store.history_state_durations(
            StateQuery(tenant, pairs, window, buckets, now)
        )
        for r in rows:
            slot = out.setdefault((r.entity_id, start + timedelta(days=r.bucket)), {})
            slot[r.value] = slot.get(r.value, 0.0) + r.seconds
    return out


@dataclass(slots=True)
class DayDrops:
    entity_id: str
    day: date
    count: int
    sum: float
    drops: int


async def day_drops(
    broker: Broker, tenant: str, pairs: Sequence[Pair], first: date, last: date, drop: float
) -> AsyncIterator[list[DayDrops]]:
    """Per (entity, day) with numbers: count, sum, and drops of at least ``drop`` between
    consecutive numbers of the day — one chunk of days at a time."""
    if not pairs:
        return
    store = indicator_store(broker)
    for start, end in chunks(first, last):
        window, buckets = _span(start, end)
        rows = await store.history_value_drops(DropQuery(tenant, pairs, window, buckets, drop))
        yield [
            DayDrops(r.entity_id, start + timedelta(days=r.bucket), r.count, r.sum, r.drops)
            for r in rows
        ]


async def instances_by_day(
    broker: Broker, tenant: str, pairs: Sequence[Pair], first: date, last: date
) -> AsyncIterator[tuple[date, dict[str, list[tuple[datetime, Any]]]]]:
    """Each day's instances per entity, oldest first, as (observation time, value)."""
    store = history_store(broker)
    day = first
    while day <= last:
        window = TimeWindow("observedAt", day_start_utc(day), day_start_utc(day + timedelta(1)))
        rows = await store.history_instances(
            InstanceQuery(tenant, pairs, window, PER_PAIR_DAY_LIMIT)
        )
        series: dict[str, list[tuple[datetime, Any]]] = {}
        for row in rows:
            if row.time is not None:
                series.setdefault(row.entity_id, []).append((row.time, row.instance.get("value")))
        yield day, series
        day += timedelta(days=1)


async def first_day(broker: Broker, tenant: str, pairs: Sequence[Pair]) -> date | None:
    """The Bangkok day of the oldest instance of any pair (one index seek per pair)."""
    if not pairs:
        return None
    rows = await history_store(broker).history_instances(
        InstanceQuery(tenant, pairs, TimeWindow("observedAt"), 1)
    )
    times = [r.time for r in rows if r.time is not None]
    return bangkok_date(min(times)) if times else None
