"""KPI use cases: incremental recomputation, and reading the results.

``recompute_kpis`` runs out of the request path (the periodic task, ``POST
/nakhon/v1/kpis/recompute``, tests and the benchmark):

1. **Which days.** The first run of a tenant (or ``full=True``) starts at the oldest history
   of any source; later runs at the Bangkok day of the previous run's ``now`` (the high-water
   mark), or earlier when one of the ``late_days`` days before it holds history written after
   the previous run began (its ``history_mark``): then from the oldest such day, so data
   arriving up to that late is still counted. Older history is never read again.
2. **Rollups.** Each source rebuilds the day rollups of those days from history
   (:mod:`nakhon.kpi.sources`) and replaces them in kv (:mod:`nakhon.kpi.store`).
3. **KPIs.** Every day, month and fiscal-year period holding one of those days is computed
   from day rollups alone, with its trend against the previous period, and written as an
   update of the KPI's ``KeyPerformanceIndicator`` entity through the Broker (SYSTEM
   principal, one batch), so it gets temporal history and subscriptions. A period whose
   value did not change is not written again, except the newest of each frequency (its
   ``updatedAt`` and ``dateNextCalculation`` move).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nakhon.broker.model import Entity
from nakhon.broker.service import Broker
from nakhon.core.auth import SYSTEM, Principal
from nakhon.core.errors import BadRequestData, ResourceNotFound
from nakhon.core.logs import get_logger
from nakhon.domains.catalogue import builtin_domains, check_lang
from nakhon.kpi import history as h
from nakhon.kpi import store as kv
from nakhon.kpi.definitions import KPI_BY_ID, KPIS, KpiDefinition
from nakhon.kpi.entities import entity_id, kpi_entity, standing, trend
from nakhon.kpi.periods import (
    FREQUENCY,
    KINDS,
    Kind,
    Period,
    bangkok_date,
    days,
    parse_period_id,
    periods_touching,
)
from nakhon.kpi.sources import SOURCES, DayDocs, Source, days_with_late_data, earliest_day

log = get_logger("nakhon.kpi")
DEFAULT_LATE_DAYS = 1
DEFAULT_INTERVAL_MINUTES = 15.0


@dataclass(slots=True)
class RecomputeResult:
    """What one run did (returned to callers, logged, shown by the benchmark)."""

    tenant: str
    first: date | None
    last: date
    days_rebuilt: int = 0
    periods_written: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _round(value: float) -> float:
    return round(value, 4)


async def _period_value(
    rollups: kv.RollupStore, kpi: KpiDefinition, period: Period
) -> float | None:
    src = {key: await rollups.days(key, period.first, period.last) for key in kpi.sources}
    value = kpi.compute(src)
    return None if value is None else _round(value)


async def recompute_kpis(
    broker: Broker,
    tenant: str,
    now: datetime | None = None,
    *,
    full: bool = False,
    late_days: int = DEFAULT_LATE_DAYS,
    interval_minutes: float = DEFAULT_INTERVAL_MINUTES,
) -> RecomputeResult:
    """Bring the tenant's day rollups and KPI entities up to date (see the module doc)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    storage = broker.storage
    today = bangkok_date(now)
    state = await kv.load_state(storage, tenant)
    t0 = time.perf_counter()
    # Taken before any history is read: whatever is written from here on is newer than it, so
    # the next run can tell late data from data this run has already counted.
    mark = await h.change_store(broker).history_mark()
    late_seconds: float | None = None
    if full or "hwm" not in state:
        found = [d for s in SOURCES if (d := await earliest_day(broker, tenant, s)) is not None]
        first: date | None = min(found) if found else today
    else:
        hwm_day = bangkok_date(datetime.fromisoformat(state["hwm"]))
        first = min(hwm_day, today)
        late_first = min(hwm_day - timedelta(days=late_days), today)
        if "mark" not in state:  # state of an older version: re-read the whole margin
            first = late_first
        elif late_first < first:
            # Re-reading the late margin doubled a run's work for data that is nearly always
            # complete; a look for rows written after the last run's mark (an index scan on
            # either engine) finds the days that did get late data, and only from the oldest
            # of those on is rebuilt.
            t = time.perf_counter()
            late = await days_with_late_data(
                broker, tenant, late_first, first - timedelta(days=1), state["mark"]
            )
            first = min(late | {first})
            late_seconds = time.perf_counter() - t
    assert first is not None
    result = RecomputeResult(tenant, first, today)
    if late_seconds is not None:
        result.seconds["late"] = late_seconds

    rollups = kv.RollupStore(storage, tenant)
    span = list(days(first, today))

    async def build(source: Source) -> DayDocs:
        t = time.perf_counter()
        docs = await source.build(broker, tenant, first, today, now)
        result.seconds[source.key] = time.perf_counter() - t
        return docs

    # The sources read history concurrently: their reductions run in the database (SQLite's
    # reader threads release the GIL while a statement steps; PostgreSQL runs a backend per
    # connection), so a run uses every core instead of one — 2 × on this 2-core machine. The
    # per-source seconds overlap.
    built = await asyncio.gather(*(build(source) for source in SOURCES))
    for source, docs in zip(SOURCES, built, strict=True):
        # A snapshot source only knows today; the days before keep their snapshots.
        await rollups.replace(source.key, [today] if source.snapshot else span, docs)
    await rollups.flush()
    result.days_rebuilt = len(span)
    result.seconds["rollups"] = time.perf_counter() - t0

    t = time.perf_counter()
    next_run = now + timedelta(minutes=interval_minutes or DEFAULT_INTERVAL_MINUTES)
    since = state.setdefault("effectiveSince", {})
    writes: list[Entity] = []
    for kpi in KPIS:
        values = await kv.load_values(storage, tenant, kpi.id)
        changed = False
        for kind in KINDS:
            stored: dict[str, Any] = values.setdefault(kind, {})
            touched = periods_touching(kind, first, today)
            for period in touched:
                value = await _period_value(rollups, kpi, period)
                if value is None:
                    if stored.pop(period.id, None) is not None:
                        changed = True
                    continue
                prev_period = period.previous()
                prev = (
                    stored.get(prev_period.id, {}).get("value")
                    if prev_period.id in stored
                    else await _period_value(rollups, kpi, prev_period)
                )
                entry = {"value": value, "previous": prev, "standing": standing(kpi, kind, value)}
                newest = period is touched[-1]
                if stored.get(period.id) == entry and not newest:
                    continue
                stored[period.id] = entry
                changed = True
                eid = entity_id(kpi.id, kind)
                effective = datetime.fromisoformat(since.setdefault(eid, now.isoformat()))
                writes.append(
                    kpi_entity(
                        kpi,
                        period,
                        value,
                        prev,
                        tenant=tenant,
                        now=now,
                        next_run=next_run,
                        effective_since=effective,
                    )
                )
        if changed:
            await kv.save_values(storage, tenant, kpi.id, values)
    if writes:
        batch = await broker.batch(SYSTEM, tenant, "upsert", writes, upsert_mode="update")
        for eid, error in batch.errors:
            log.error("KPI entity not written", tenant=tenant, entity=eid, error=str(error))
    result.periods_written = len(writes)
    result.seconds["kpis"] = time.perf_counter() - t
    state["hwm"] = now.isoformat()
    state["mark"] = mark
    await kv.save_state(storage, tenant, state)
    result.seconds["total"] = time.perf_counter() - t0
    return result


# --- reading -------------------------------------------------------------------------------


def _period_doc(
    kind: Kind, pid: str, entry: dict[str, Any], kpi: KpiDefinition, lang: str | None
) -> dict[str, Any]:
    period = parse_period_id(pid)
    label = period.label(lang) if lang else period.labels()
    return {
        "period": pid,
        "label": label,
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "value": entry["value"],
        "target": kpi.target_for(kind),
        "standing": entry.get("standing"),
        "trend": trend(kpi, entry["value"], entry.get("previous")),
    }


def _check_domain(domain: str | None) -> str | None:
    if domain in (None, ""):
        return None
    ids = [d.id for d in builtin_domains()]
    if domain not in ids:
        raise BadRequestData(f"domain must be one of {', '.join(ids)}; got {domain!r}.")
    return domain


async def _kpi_doc(
    broker: Broker, tenant: str, kpi: KpiDefinition, lang: str | None, history: int
) -> dict[str, Any]:
    values = await kv.load_values(broker.storage, tenant, kpi.id)
    doc = kpi.doc(lang)
    doc["entities"] = {}
    doc["latest"] = {}
    if history:
        doc["values"] = {}
    for kind in KINDS:
        period_kind = FREQUENCY[kind]
        doc["entities"][period_kind] = entity_id(kpi.id, kind)
        stored = values.get(kind) or {}
        ids = sorted(stored)  # ISO dates, YYYY-MM and FYyyyy sort as text within a kind
        doc["latest"][period_kind] = (
            _period_doc(kind, ids[-1], stored[ids[-1]], kpi, lang) if ids else None
        )
        if history:
            doc["values"][period_kind] = [
                _period_doc(kind, p, stored[p], kpi, lang) for p in reversed(ids[-history:])
            ]
    return doc


async def list_kpis(
    broker: Broker,
    principal: Principal,
    tenant: str,
    *,
    domain: str | None = None,
    lang: str | None = None,
) -> list[dict[str, Any]]:
    """Every KPI definition (of one domain) with its latest value per frequency."""
    await broker.access.require_read(principal, tenant)
    lang, domain = check_lang(lang), _check_domain(domain)
    return [
        await _kpi_doc(broker, tenant, k, lang, 0)
        for k in KPIS
        if domain is None or k.domain == domain
    ]


async def get_kpi(
    broker: Broker,
    principal: Principal,
    tenant: str,
    kpi_id: str,
    *,
    lang: str | None = None,
    history: int = 31,
) -> dict[str, Any]:
    """One KPI with its latest values and up to ``history`` periods per frequency."""
    await broker.access.require_read(principal, tenant)
    kpi = KPI_BY_ID.get(kpi_id)
    if kpi is None:
        raise ResourceNotFound(f"No KPI {kpi_id!r}; the KPIs are {', '.join(KPI_BY_ID)}.")
    return await _kpi_doc(broker, tenant, kpi, check_lang(lang), max(1, history))


async def recompute(
    broker: Broker,
    principal: Principal,
    tenant: str,
    *,
    full: bool = False,
    late_days: int = DEFAULT_LATE_DAYS,
) -> RecomputeResult:
    """Recompute now on behalf of a caller (write credential for the tenant needed)."""
    broker.access.require_write(principal, tenant)
    return await recompute_kpis(broker, tenant, full=full, late_days=late_days)
