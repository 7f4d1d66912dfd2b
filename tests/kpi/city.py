"""A small generated city for the KPI tests: three Bangkok days across the fiscal-year
boundary (29 Sep – 1 Oct 2024), written through the NGSI-LD API, and the expected values of
every KPI computed here, independently of nakhon.kpi."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.conftest import Api

DAYS = [date(2024, 9, 29), date(2024, 9, 30), date(2024, 10, 1)]
NOW = datetime(2024, 10, 2, 1, tzinfo=UTC)  # 08:00 on 2 October in Bangkok
T = "/ngsi-ld/v1/temporal/entities"
E = "/ngsi-ld/v1/entities"


def at(day: date, hour: float) -> datetime:
    """Bangkok wall time → UTC."""
    return (
        datetime(day.year, day.month, day.day, tzinfo=UTC)
        - timedelta(hours=7)
        + timedelta(hours=hour)
    )


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def prop(value: Any, moment: datetime) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": iso(moment)}


# --- series ---------------------------------------------------------------------------------


def pm25(s: int, d: int, h: int) -> float:
    return 20.0 + 10 * s + h + 5 * d


def speed(s: int, d: int, k: int) -> float:
    return float((k * 7 + s * 3 + d) % 60) + 0.25 * (k % 3)


def power(lamp: int, h: int) -> float:
    return (100.0 + 50 * lamp) if (h >= 18 or h < 6) else 0.0


def fill(h: int) -> float:
    return round(0.1 + 0.04 * (h if h < 20 else h - 20), 4)


def cashless(h: int) -> int:
    return 3 + h % 5


PARKING = {  # spot → [(hour, status)], the same every day
    0: [(0, "occupied"), (6, "free"), (18, "occupied")],
    1: [(8, "occupied"), (20, "free")],
}


def day_payloads(d: int) -> list[tuple[str, dict[str, Any]]]:
    """(url, body) of one day's history for every device."""
    day = DAYS[d]
    out: list[tuple[str, dict[str, Any]]] = []
    for s in range(2):
        out.append(
            (
                T,
                {
                    "id": f"urn:ngsi-ld:AirQualityObserved:s{s}",
                    "type": "AirQualityObserved",
                    "pm25": [prop(pm25(s, d, h), at(day, h + 0.5)) for h in range(24)],
                    "pm10": [prop(10.0, at(day, h + 0.5)) for h in range(24)],
                },
            )
        )
        out.append(
            (
                T,
                {
                    "id": f"urn:ngsi-ld:TrafficFlowObserved:t{s}",
                    "type": "TrafficFlowObserved",
                    "averageVehicleSpeed": [
                        prop(speed(s, d, k), at(day, k / 2)) for k in range(48)
                    ],
                },
            )
        )
        out.append(
            (
                T,
                {
                    "id": f"urn:ngsi-ld:ParkingSpot:p{s}",
                    "type": "ParkingSpot",
                    "status": [prop(v, at(day, h)) for h, v in PARKING[s]],
                },
            )
        )
        out.append(
            (
                T,
                {
                    "id": f"urn:ngsi-ld:Streetlight:l{s}",
                    "type": "Streetlight",
                    "powerConsumption": [prop(power(s, h), at(day, h + 0.25)) for h in range(24)],
                },
            )
        )
        out.append(
            (
                T,
                {
                    "id": f"urn:ngsi-ld:WasteContainer:w{s}",
                    "type": "WasteContainer",
                    "fillingLevel": [prop(fill(h), at(day, h)) for h in range(24)],
                },
            )
        )
    out.append(
        (
            T,
            {
                "id": "urn:ngsi-ld:OffStreetParking:o0",
                "type": "OffStreetParking",
                "availableSpotNumber": [prop(40 + (h % 2) * 2, at(day, h)) for h in range(24)],
            },
        )
    )
    out.append(
        (
            T,
            {
                "id": "urn:ngsi-ld:CashlessPayment:c0",
                "type": "CashlessPayment",
                "cashlessTransactions": [prop(cashless(h), at(day, h)) for h in range(24)],
                "cashTransactions": [prop(2, at(day, h)) for h in range(24)],
            },
        )
    )
    return out


def state_payloads() -> list[tuple[str, dict[str, Any]]]:
    """Entities whose KPIs come from their current state."""
    out: list[tuple[str, dict[str, Any]]] = [
        (
            E,
            {
                "id": "urn:ngsi-ld:OffStreetParking:o0",
                "type": "OffStreetParking",
                "totalSpotNumber": {"type": "Property", "value": 100},
            },
        ),
    ]
    for i, online in enumerate([True, True, False]):
        out.append(
            (
                E,
                {
                    "id": f"urn:ngsi-ld:EService:e{i}",
                    "type": "EService",
                    "online": {"type": "Property", "value": online},
                },
            )
        )
    requests = [
        (at(DAYS[0], 10), at(DAYS[1], 10), "closed"),
        (at(DAYS[1], 8), at(DAYS[2], 20), "closed"),
        (at(DAYS[2], 9), None, "open"),
    ]
    for i, (opened, closed, status) in enumerate(requests):
        body: dict[str, Any] = {
            "id": f"urn:ngsi-ld:ServiceRequest:r{i}",
            "type": "ServiceRequest",
            "status": {"type": "Property", "value": status},
            "requestedDatetime": {"type": "Property", "value": iso(opened)},
        }
        if closed:
            body["closedDatetime"] = {"type": "Property", "value": iso(closed)}
        out.append((E, body))
    return out


async def write(api: Api, tenant: str, payloads: list[tuple[str, dict[str, Any]]]) -> None:
    headers = {"NGSILD-Tenant": tenant, "Content-Type": "application/json"}
    for url, body in payloads:
        r = await api.post(url, json=body, headers=headers)
        assert r.status_code in (201, 204), r.text


# --- expected values, by the definitions' words -----------------------------------------------


def thai_pm25_aqi(x: float) -> int:
    """PCD 2023 PM2.5 sub-index (truncated to 0.1), bands used by the test data only."""
    x = math.floor(x * 10 + 1e-9) / 10
    for lo, hi, ilo, ihi in (
        (0, 15, 0, 25),
        (15.1, 25, 26, 50),
        (25.1, 37.5, 51, 100),
        (37.6, 75, 101, 200),
    ):
        if x <= hi:
            return math.floor((ihi - ilo) / (hi - lo) * (x - lo) + ilo + 0.5)
    raise AssertionError(x)


def expected(days: list[int]) -> dict[str, float | None]:
    """Every KPI over the given day indexes (one period)."""
    means = {
        (s, d): statistics.mean(pm25(s, d, h) for h in range(24)) for s in range(2) for d in days
    }
    over = sum(1 for d in days if max(means[(s, d)] for s in range(2)) > 37.5)
    aqi = statistics.mean(
        statistics.mean(thai_pm25_aqi(means[(s, d)]) for s in range(2)) for d in days
    )
    speeds = [speed(s, d, k) for s in range(2) for d in days for k in range(48)]
    spot_share = {0: 12 / 24, 1: 12 / 16}  # time-weighted, from the first report of the day
    off_occupied = 100 - statistics.mean(40 + (h % 2) * 2 for h in range(24))
    occupancy = sum(spot_share.values()) + off_occupied
    kwh = sum(sum(power(lamp, h) for h in range(24)) / 1000 for lamp in range(2)) / 2
    fills = [fill(h) for h in range(24)]
    cl = sum(cashless(h) for h in range(24))
    return {
        "pm25-days-over-standard": float(over),
        "mean-aqi": aqi,
        "median-traffic-speed": statistics.median(speeds),  # exact; the KPI is binned
        "parking-occupancy": occupancy * len(days) / (102 * len(days)) * 100,
        "streetlight-energy-per-lamp": kwh * len(days),
        "waste-fill-level": statistics.mean(fills) * 100,
        "waste-collections": 1.0,
        "cashless-payment-share": cl / (cl + 2 * 24) * 100,
    }
