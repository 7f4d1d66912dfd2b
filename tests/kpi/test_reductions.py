"""The SQL reductions the KPI sources use (value histogram, state durations, value drops) give
exactly what the per-instance computation in Python gave, on both engines, on awkward data:
mixed value types, a state longer than the index keeps, negative and boundary speeds, reports
sharing a timestamp, reports after ``now``, readings on both sides of a Bangkok midnight."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from nakhon.broker.service import Broker
from nakhon.kpi import history as h
from nakhon.kpi import sources
from tests.conftest import Api
from tests.kpi.city import at, iso, write

DAYS = [date(2024, 9, 29), date(2024, 9, 30)]
NOW = at(DAYS[1], 21.5)  # "today" is the second day: its last reports are capped by now
T = "/ngsi-ld/v1/temporal/entities"

SPEEDS: list[Any] = [5, 5.0, 4.999, 0, -1.5, 80.25, True, "fast", 12.5, 12.5, 1e-9, 59.99]
# One status longer than the index keeps (SQLite's txt, 64 characters): read from the instance.
LONG = "reserved for the provincial governor's visit, " * 2
STATUSES: list[Any] = ["occupied", "free", LONG, "unknown", 3, "free", "occupied", True]
FILLS: list[Any] = [0.9, 0.6, 0.3, 0.8, "full", 0.5, 0.2, 0.2, False, 1, 0.7, 0.1]


def _series(values: list[Any], n: int, d: int) -> list[dict[str, Any]]:
    day = DAYS[d]
    out = []
    for k, v in enumerate(values):
        # Slots 0/1 and 4/5 share a timestamp (stored order decides); device 2's last slot
        # falls after the Bangkok midnight (the next day), and on the second day the slots
        # from 22:00 on are after NOW.
        hour = [0.0, 0.0, 0.25, 3.0, 7.5, 7.5, 12.0, 15.0, 20.0, 22.0, 23.9, 23.99][k % 12]
        moment = at(day, hour + 0.1 * n)
        out.append({"type": "Property", "value": v, "observedAt": iso(moment)})
    return out


def _payloads(d: int) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for n in range(3):
        rot = (n + d) % 5
        out.append(
            (
                T,
                {
                    "id": f"urn:ngsi-ld:TrafficFlowObserved:r{n}",
                    "type": "TrafficFlowObserved",
                    "averageVehicleSpeed": _series(SPEEDS[rot:] + SPEEDS[:rot], n, d),
                },
            )
        )
        out.append(
            (
                T,
                {
                    "id": f"urn:ngsi-ld:ParkingSpot:p{n}",
                    "type": "ParkingSpot",
                    "status": _series(STATUSES[rot:] + STATUSES[:rot], n, d),
                },
            )
        )
        out.append(
            (
                T,
                {
                    "id": f"urn:ngsi-ld:WasteContainer:w{n}",
                    "type": "WasteContainer",
                    "fillingLevel": _series(FILLS[rot:] + FILLS[:rot], n, d),
                },
            )
        )
    return out


# --- the per-instance computation the sources used before (the reference) --------------------


async def _traffic(broker: Broker, tenant: str, first: date, last: date) -> sources.DayDocs:
    pairs = h.pairs_for(
        await h.entities_of(broker, tenant, "TrafficFlowObserved"), "averageVehicleSpeed"
    )
    out: sources.DayDocs = {}
    async for day, series in h.instances_by_day(broker, tenant, pairs, first, last):
        n, total = 0, 0.0
        hist: dict[str, int] = defaultdict(int)
        for points in series.values():
            for _, v in points:
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
                    n += 1
                    total += v
                    hist[str(int(v // sources.SPEED_BIN))] += 1
        if n:
            out[day] = {"n": n, "sum": total, "hist": dict(hist)}
    return out


async def _parking(
    broker: Broker, tenant: str, first: date, last: date, now: datetime
) -> sources.DayDocs:
    pairs = h.pairs_for(await h.entities_of(broker, tenant, "ParkingSpot"), "status")
    out: sources.DayDocs = {}
    async for day, series in h.instances_by_day(broker, tenant, pairs, first, last):
        end = min(at(day, 24), now)
        occ, spots = 0.0, 0
        for points in series.values():
            seconds = {"occupied": 0.0, "free": 0.0}
            for i, (t, v) in enumerate(points):
                until = points[i + 1][0] if i + 1 < len(points) else end
                if v in seconds and until > t:
                    seconds[v] += (until - t).total_seconds()
            observed = seconds["occupied"] + seconds["free"]
            if observed > 0:
                occ += seconds["occupied"] / observed
                spots += 1
        if spots:
            out[day] = {"occupied": occ, "capacity": spots}
    return out


async def _waste(broker: Broker, tenant: str, first: date, last: date) -> sources.DayDocs:
    pairs = h.pairs_for(await h.entities_of(broker, tenant, "WasteContainer"), "fillingLevel")
    out: sources.DayDocs = {}
    async for day, series in h.instances_by_day(broker, tenant, pairs, first, last):
        n, total, drops, containers = 0, 0.0, 0, 0
        for points in series.values():
            values = [
                float(v)
                for _, v in points
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            ]
            if not values:
                continue
            containers += 1
            n += len(values)
            total += sum(values)
            drops += sum(1 for a, b in pairwise(values) if a - b >= sources.EMPTYING_DROP)
        if containers:
            out[day] = {"n": n, "sum": total, "collections": drops, "containers": containers}
    return out


def _approx(doc: sources.DayDocs) -> Any:
    """Sums may be added in another order in SQL: equal to the last few bits."""
    return {
        day: {k: (pytest.approx(v, rel=1e-12) if isinstance(v, float) else v) for k, v in d.items()}
        for day, d in doc.items()
    }


async def test_sql_reductions_equal_the_per_instance_computation(api: Api, tenant: str) -> None:
    broker: Broker = api.client.app.state.api.broker  # type: ignore[attr-defined]
    for d in range(len(DAYS)):
        await write(api, tenant, _payloads(d))
    first, last = DAYS[0] - timedelta(days=1), DAYS[1] + timedelta(days=1)

    want = await _traffic(broker, tenant, first, last)
    assert len(want) >= 2
    assert await sources.build_traffic(broker, tenant, first, last, NOW) == _approx(want)

    want = await _parking(broker, tenant, first, last, NOW)
    assert len(want) >= 2
    assert await sources.build_parking_spots(broker, tenant, first, last, NOW) == _approx(want)

    want = await _waste(broker, tenant, first, last)
    assert len(want) >= 2 and sum(d["collections"] for d in want.values()) > 0
    assert await sources.build_waste(broker, tenant, first, last, NOW) == _approx(want)
