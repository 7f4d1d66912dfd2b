"""Rollup sources: what each KPI input keeps per (tenant, source, Bangkok day).

A source reads a span of whole days of history (:mod:`nakhon.kpi.history`) and reduces it to
one small JSON document per day — the *day rollup*. KPIs are then computed from day rollups
only, so a period of any length costs one read per month of rollups, and a day's new data
rebuilds that day's rollup without touching older history. Rebuilding a day replaces its
document (idempotent), which is what makes incremental and full recomputation agree.

What each source keeps (all sums, so days merge into any period by adding):

* ``air`` — AirQualityObserved pm25/pm10, hourly means first (PCD method, as
  :mod:`nakhon.domains.averaging`); a station-day counts when ≥ 18 of 24 hours have data.
  Keeps the stations' 24 h PM2.5 means (count, sum, max, how many above 37.5 µg/m³) and their
  daily AQI (:func:`nakhon.domains.aqi.station_aqi` of the pm25/pm10 24 h means).
* ``traffic`` — TrafficFlowObserved averageVehicleSpeed: count, sum and a histogram of
  1 km/h bins (the median is interpolated in its bin: error < 1 km/h, see docs/kpi.md).
* ``parkingSpot`` — ParkingSpot status, time-weighted per spot within the day: each report
  holds until the next one (the last until the day's end, or now for today); the spot's
  occupied share of its free+occupied time, summed over spots.
* ``offStreet`` — OffStreetParking availableSpotNumber daily mean against the entity's
  totalSpotNumber: occupied spaces and capacity, summed over sites.
* ``streetlight`` — Streetlight powerConsumption (W): Σ over hours with data of the hourly
  mean power → kWh per lamp and day, summed over lamps, and the number of lamps.
* ``waste`` — WasteContainer fillingLevel (0–1): count, sum, and collections, i.e. drops of at
  least :data:`EMPTYING_DROP` between consecutive readings of one container within the day.
* ``cashless`` — CashlessPayment cashlessTransactions and cashTransactions (counts per
  report): daily sums.
* ``eservice`` — EService entities now: how many, and how many with ``online`` true (a
  snapshot kept on the day it is taken).
* ``requests`` — ServiceRequest entities now: closed ones, by the Bangkok day they closed,
  resolution hours (count, sum). No ServiceRequest entities: nothing (a no-op).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from nakhon.broker.service import Broker
from nakhon.domains.aqi import station_aqi
from nakhon.domains.averaging import parse_time
from nakhon.kpi import history as h
from nakhon.kpi.periods import bangkok_date

PM25_STANDARD = 37.5
"""µg/m³, the Thai 24-hour PM2.5 standard since 2023-06-01."""
MIN_HOURS = 18
"""Hours with data a station-day needs (75 % of 24, as the PCD averaging rule)."""
SPEED_BIN = 1.0
"""km/h per histogram bin of the traffic speed median."""
EMPTYING_DROP = 0.3
"""A fill level falling by this much between two readings counts as one collection."""

DayDocs = dict[date, dict[str, Any]]
Builder = Callable[[Broker, str, date, date, datetime], Awaitable[DayDocs]]


@dataclass(frozen=True, slots=True)
class Source:
    """One rollup source: the entity type and attributes it reads, and its builder."""

    key: str
    type_name: str
    attrs: tuple[str, ...]
    build: Builder
    history: bool = True
    """False for sources computed from current state (no history needed)."""
    snapshot: bool = False
    """True when a build only knows today (earlier days keep their own snapshots)."""


async def _pairs(broker: Broker, tenant: str, type_name: str, attr: str) -> list[h.Pair]:
    return h.pairs_for(await h.entities_of(broker, tenant, type_name), attr)


# --- air quality -----------------------------------------------------------------------------


async def _hourly_day_means(
    broker: Broker, tenant: str, pairs: list[h.Pair], first: date, last: date
) -> dict[tuple[str, date], float]:
    """Valid 24 h means per (station, day): mean of hourly means, ≥ MIN_HOURS hours."""
    hours: dict[tuple[str, date], list[float]] = defaultdict(list)
    async for chunk in h.aggregates(broker, tenant, pairs, first, last, hourly=True):
        for b in chunk:
            if b.avg is not None:
                hours[(b.entity_id, b.day)].append(b.avg)
    return {k: sum(v) / len(v) for k, v in hours.items() if len(v) >= MIN_HOURS}


async def build_air(broker: Broker, tenant: str, first: date, last: date, now: datetime) -> DayDocs:
    stations = await h.entities_of(broker, tenant, "AirQualityObserved")
    pm25 = await _hourly_day_means(broker, tenant, h.pairs_for(stations, "pm25"), first, last)
    pm10 = await _hourly_day_means(broker, tenant, h.pairs_for(stations, "pm10"), first, last)
    out: DayDocs = {}
    for eid, day in sorted(set(pm25) | set(pm10)):
        doc = out.setdefault(
            day,
            {"pm25N": 0, "pm25Sum": 0.0, "pm25Max": None, "pm25Over": 0, "aqiN": 0, "aqiSum": 0},
        )
        mean = pm25.get((eid, day))
        if mean is not None:
            doc["pm25N"] += 1
            doc["pm25Sum"] += mean
            doc["pm25Max"] = mean if doc["pm25Max"] is None else max(doc["pm25Max"], mean)
            doc["pm25Over"] += mean > PM25_STANDARD
        try:
            aqi = station_aqi({"pm25": mean, "pm10": pm10.get((eid, day))}, day)
        except ValueError:  # a negative mean is a sensor fault, not air
            aqi = None
        if aqi is not None:
            doc["aqiN"] += 1
            doc["aqiSum"] += aqi.aqi
    return out


# --- instance-based sources ------------------------------------------------------------------


async def build_traffic(
    broker: Broker, tenant: str, first: date, last: date, now: datetime
) -> DayDocs:
    pairs = await _pairs(broker, tenant, "TrafficFlowObserved", "averageVehicleSpeed")
    # The histogram is counted in SQL (numbers only: a boolean or string speed is no reading).
    days = await h.day_histograms(
        broker, tenant, pairs, first, last, width=SPEED_BIN, min_value=0.0
    )
    out: DayDocs = {}
    for day, d in days.items():
        if d.n:
            hist = {str(k): c for k, c in sorted(d.hist.items())}
            out[day] = {"n": d.n, "sum": d.sum, "hist": hist}
    return out


async def build_parking_spots(
    broker: Broker, tenant: str, first: date, last: date, now: datetime
) -> DayDocs:
    pairs = await _pairs(broker, tenant, "ParkingSpot", "status")
    out: DayDocs = {}
    # Holding times per status are summed in SQL (LEAD over each spot's reports of the day).
    spans = await h.day_state_seconds(broker, tenant, pairs, first, last, now)
    for (_, day), seconds in sorted(spans.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        occupied, free = seconds.get("occupied", 0.0), seconds.get("free", 0.0)
        observed = occupied + free
        if observed > 0:
            doc = out.setdefault(day, {"occupied": 0.0, "capacity": 0})
            doc["occupied"] += occupied / observed
            doc["capacity"] += 1
    return out


async def build_waste(
    broker: Broker, tenant: str, first: date, last: date, now: datetime
) -> DayDocs:
    pairs = await _pairs(broker, tenant, "WasteContainer", "fillingLevel")
    out: DayDocs = {}
    # Count, sum and drops (LAG over each container's numbers of the day) come from SQL.
    async for chunk in h.day_drops(broker, tenant, pairs, first, last, EMPTYING_DROP):
        for r in chunk:
            doc = out.setdefault(r.day, {"n": 0, "sum": 0.0, "collections": 0, "containers": 0})
            doc["n"] += r.count
            doc["sum"] += r.sum
            doc["collections"] += r.drops
            doc["containers"] += 1
    return out


# --- daily / hourly aggregate sources --------------------------------------------------------


async def build_off_street(
    broker: Broker, tenant: str, first: date, last: date, now: datetime
) -> DayDocs:
    sites = await h.entities_of(broker, tenant, "OffStreetParking")
    capacity: dict[str, float] = {}
    for site in sites:
        iri = h.attr_iri(site, "totalSpotNumber")
        value = site.attrs[iri][0].get("value") if iri else None
        if isinstance(value, (int, float)) and value > 0:
            capacity[site.id] = float(value)
    pairs = [p for p in h.pairs_for(sites, "availableSpotNumber") if p[0] in capacity]
    out: DayDocs = {}
    async for chunk in h.aggregates(broker, tenant, pairs, first, last, hourly=False):
        for b in chunk:
            if b.avg is None:
                continue
            doc = out.setdefault(b.day, {"occupied": 0.0, "capacity": 0.0})
            total = capacity[b.entity_id]
            doc["occupied"] += total - min(max(b.avg, 0.0), total)
            doc["capacity"] += total
    return out


async def build_streetlight(
    broker: Broker, tenant: str, first: date, last: date, now: datetime
) -> DayDocs:
    pairs = await _pairs(broker, tenant, "Streetlight", "powerConsumption")
    per_lamp: dict[tuple[str, date], float] = defaultdict(float)
    async for chunk in h.aggregates(broker, tenant, pairs, first, last, hourly=True):
        for b in chunk:
            if b.avg is not None:
                per_lamp[(b.entity_id, b.day)] += b.avg / 1000.0  # W over one hour → kWh
    out: DayDocs = {}
    for (_, day), kwh in per_lamp.items():
        doc = out.setdefault(day, {"kwh": 0.0, "lamps": 0})
        doc["kwh"] += kwh
        doc["lamps"] += 1
    return out


async def build_cashless(
    broker: Broker, tenant: str, first: date, last: date, now: datetime
) -> DayDocs:
    points = await h.entities_of(broker, tenant, "CashlessPayment")
    out: DayDocs = {}
    for attr, key in (("cashlessTransactions", "cashless"), ("cashTransactions", "cash")):
        pairs = h.pairs_for(points, attr)
        async for chunk in h.aggregates(broker, tenant, pairs, first, last, hourly=False):
            for b in chunk:
                if b.sum is not None:
                    doc = out.setdefault(b.day, {"cashless": 0.0, "cash": 0.0})
                    doc[key] += b.sum
    return out


# --- sources from current state --------------------------------------------------------------


async def build_eservice(
    broker: Broker, tenant: str, first: date, last: date, now: datetime
) -> DayDocs:
    services = await h.entities_of(broker, tenant, "EService")
    if not services:
        return {}
    online = 0
    for service in services:
        iri = h.attr_iri(service, "online")
        online += bool(iri and service.attrs[iri][0].get("value") is True)
    return {bangkok_date(now): {"online": online, "total": len(services)}}


_REQUESTED = ("requestedDatetime", "requested_datetime", "dateCreated")
_CLOSED = ("closedDatetime", "dateClosed", "updatedDatetime", "updated_datetime")


def _time_attr(entity: Any, names: tuple[str, ...]) -> datetime | None:
    for name in names:
        iri = h.attr_iri(entity, name)
        if iri:
            value = entity.attrs[iri][0].get("value")
            if isinstance(value, dict):  # {"@type": "DateTime", "@value": ...}
                value = value.get("@value")
            if isinstance(value, str) and (moment := parse_time(value)) is not None:
                return moment
    return None


async def build_requests(
    broker: Broker, tenant: str, first: date, last: date, now: datetime
) -> DayDocs:
    out: DayDocs = {}
    for req in await h.entities_of(broker, tenant, "ServiceRequest"):
        iri = h.attr_iri(req, "status")
        if not iri or str(req.attrs[iri][0].get("value", "")).lower() != "closed":
            continue
        opened, closed = _time_attr(req, _REQUESTED), _time_attr(req, _CLOSED)
        if opened is None or closed is None or closed < opened:
            continue
        day = bangkok_date(closed)
        if first <= day <= last:
            doc = out.setdefault(day, {"n": 0, "hours": 0.0})
            doc["n"] += 1
            doc["hours"] += (closed - opened).total_seconds() / 3600
    return out


SOURCES: tuple[Source, ...] = (
    Source("air", "AirQualityObserved", ("pm25", "pm10"), build_air),
    Source("traffic", "TrafficFlowObserved", ("averageVehicleSpeed",), build_traffic),
    Source("parkingSpot", "ParkingSpot", ("status",), build_parking_spots),
    Source("offStreet", "OffStreetParking", ("availableSpotNumber",), build_off_street),
    Source("streetlight", "Streetlight", ("powerConsumption",), build_streetlight),
    Source("waste", "WasteContainer", ("fillingLevel",), build_waste),
    Source(
        "cashless", "CashlessPayment", ("cashlessTransactions", "cashTransactions"), build_cashless
    ),
    Source("eservice", "EService", ("online",), build_eservice, history=False, snapshot=True),
    Source("requests", "ServiceRequest", ("status",), build_requests, history=False),
)
SOURCE_BY_KEY = {s.key: s for s in SOURCES}


async def earliest_day(broker: Broker, tenant: str, source: Source) -> date | None:
    """The first day with history for a source (None: no history, or a state source)."""
    if not source.history:
        return None
    entities = await h.entities_of(broker, tenant, source.type_name)
    found = [
        d
        for a in source.attrs
        if (d := await h.first_day(broker, tenant, h.pairs_for(entities, a))) is not None
    ]
    return min(found) if found else None


async def days_with_late_data(
    broker: Broker, tenant: str, first: date, last: date, mark: int
) -> set[date]:
    """Days in ``[first, last]`` with history of any source written after ``mark``: one look
    over every source's pairs together (on PostgreSQL one scan of the rows since the mark)."""
    pairs: list[h.Pair] = []
    for source in SOURCES:
        if source.history:
            entities = await h.entities_of(broker, tenant, source.type_name)
            for attr in source.attrs:
                pairs.extend(h.pairs_for(entities, attr))
    return await h.days_written_after(broker, tenant, pairs, first, last, mark)
