"""The built-in KPI definitions: what each indicator is, where it comes from, how it is computed
from day rollups (:mod:`nakhon.kpi.sources`), its target and which direction is better.

Alignment with ISO 37120 (sustainable cities) and ISO 37122 (smart cities) is noted per KPI
where an indicator of those standards fits; the Thai PM2.5 standard is the PCD's 37.5 µg/m³
(24-hour mean, since 2023-06-01).

A computation receives, per source key, the day rollups of the period's days that have data,
and returns the value — or None when there is nothing to compute from (no entity is written
for such a period: a KPI never reports 0 for "no data").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nakhon.kpi.periods import Kind
from nakhon.kpi.sources import SPEED_BIN

Days = Sequence[dict[str, Any]]
Compute = Callable[[Mapping[str, Days]], float | None]
Direction = Literal["higherIsBetter", "lowerIsBetter"]


@dataclass(frozen=True, slots=True)
class KpiDefinition:
    """One indicator. ``target`` is per period kind when the value grows with the period
    (a count of days), else one number for every kind."""

    id: str
    domain: str
    name: dict[str, str]
    description: dict[str, str]
    unit: str
    unit_code: str
    sources: tuple[str, ...]
    entity_type: str
    attrs: tuple[str, ...]
    formula: str
    direction: Direction
    target: float | dict[Kind, float]
    compute: Compute
    standard: str = ""
    process: str = ""
    category: tuple[str, ...] = field(default=("quantitative",))

    def target_for(self, kind: Kind) -> float:
        return self.target[kind] if isinstance(self.target, dict) else self.target

    def doc(self, lang: str | None) -> dict[str, Any]:
        """The definition as JSON for the API (names in one language with ``lang``)."""
        return {
            "id": self.id,
            "domain": self.domain,
            "name": self.name[lang] if lang else dict(self.name),
            "description": self.description[lang] if lang else dict(self.description),
            "unit": self.unit,
            "unitCode": self.unit_code,
            "source": {"entityType": self.entity_type, "attrs": list(self.attrs)},
            "formula": self.formula,
            "direction": self.direction,
            "target": self.target if not isinstance(self.target, dict) else dict(self.target),
            "standard": self.standard,
        }


def _sum(days: Days, key: str) -> float:
    return float(sum(d.get(key) or 0 for d in days))


def _ratio(num: float, den: float, scale: float = 1.0) -> float | None:
    return None if den <= 0 else num / den * scale


def pm25_days_over(src: Mapping[str, Days]) -> float | None:
    days = [d for d in src.get("air", ()) if d.get("pm25N")]
    if not days:
        return None
    return float(sum(1 for d in days if (d.get("pm25Over") or 0) > 0))


def mean_aqi(src: Mapping[str, Days]) -> float | None:
    days = [d for d in src.get("air", ()) if d.get("aqiN")]
    if not days:
        return None
    # Mean over days of the day's mean station AQI: each day weighs the same however many
    # stations reported, so a station outage does not tilt the month.
    return float(sum(d["aqiSum"] / d["aqiN"] for d in days)) / len(days)


def histogram_median(hist: Mapping[str, int], width: float) -> float | None:
    """The median of binned values: linear interpolation inside the median's bin."""
    n = sum(hist.values())
    if n == 0:
        return None
    half = n / 2
    seen = 0
    for key in sorted(hist, key=int):
        count = hist[key]
        if seen + count >= half:
            return (int(key) + (half - seen) / count) * width
        seen += count
    raise AssertionError("unreachable")  # pragma: no cover


def median_speed(src: Mapping[str, Days]) -> float | None:
    merged: dict[str, int] = {}
    for d in src.get("traffic", ()):
        for key, count in (d.get("hist") or {}).items():
            merged[key] = merged.get(key, 0) + count
    return histogram_median(merged, SPEED_BIN)


def parking_occupancy(src: Mapping[str, Days]) -> float | None:
    days = [*src.get("parkingSpot", ()), *src.get("offStreet", ())]
    return _ratio(_sum(days, "occupied"), _sum(days, "capacity"), 100.0)


def streetlight_kwh_per_lamp(src: Mapping[str, Days]) -> float | None:
    days = [d for d in src.get("streetlight", ()) if d.get("lamps")]
    if not days:
        return None
    return float(sum(d["kwh"] / d["lamps"] for d in days))


def waste_fill(src: Mapping[str, Days]) -> float | None:
    days = src.get("waste", ())
    return _ratio(_sum(days, "sum"), _sum(days, "n"), 100.0)


def waste_collections(src: Mapping[str, Days]) -> float | None:
    days = src.get("waste", ())
    return _ratio(_sum(days, "collections"), _sum(days, "containers"))


def cashless_share(src: Mapping[str, Days]) -> float | None:
    days = src.get("cashless", ())
    cashless = _sum(days, "cashless")
    return _ratio(cashless, cashless + _sum(days, "cash"), 100.0)


def eservices_online(src: Mapping[str, Days]) -> float | None:
    days = src.get("eservice", ())
    if not days:
        return None
    last = days[-1]  # the newest snapshot in the period
    return _ratio(float(last["online"]), float(last["total"]), 100.0)


def resolution_hours(src: Mapping[str, Days]) -> float | None:
    days = src.get("requests", ())
    return _ratio(_sum(days, "hours"), _sum(days, "n"))


def _names(th: str, en: str) -> dict[str, str]:
    return {"th": th, "en": en}


KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        "pm25-days-over-standard",
        "environment",
        _names("จำนวนวันที่ PM2.5 เกินมาตรฐาน", "Days with PM2.5 above the Thai standard"),
        _names(
            "จำนวนวันที่ค่าเฉลี่ย 24 ชั่วโมงของ PM2.5 ของสถานีใดสถานีหนึ่งเกิน 37.5 มคก./ลบ.ม.",
            "Days on which at least one station's 24-hour PM2.5 mean was above 37.5 µg/m³",
        ),
        "days",
        "DAY",
        ("air",),
        "AirQualityObserved",
        ("pm25",),
        "count of days where max over stations of the 24 h mean (≥ 18 h of data) > 37.5",
        "lowerIsBetter",
        {"day": 0, "month": 3, "fiscal_year": 30},
        pm25_days_over,
        "ISO 37120 8.1 (fine particulate matter), Thai PCD 24 h standard",
        "Air quality",
    ),
    KpiDefinition(
        "mean-aqi",
        "environment",
        _names("ดัชนีคุณภาพอากาศเฉลี่ย", "Mean air quality index"),
        _names(
            "ค่าเฉลี่ย AQI รายวันของทุกสถานี ตามเกณฑ์ของกรมควบคุมมลพิษ",
            "Mean of the daily station AQI (Pollution Control Department method)",
        ),
        "AQI",
        "C62",
        ("air",),
        "AirQualityObserved",
        ("pm25", "pm10"),
        "mean over days of mean over stations of the Thai AQI of the pm25/pm10 24 h means",
        "lowerIsBetter",
        50,
        mean_aqi,
        "ISO 37120 8 (environment)",
        "Air quality",
    ),
    KpiDefinition(
        "median-traffic-speed",
        "mobility",
        _names("ความเร็วจราจรมัธยฐาน", "Median traffic speed"),
        _names(
            "มัธยฐานของความเร็วเฉลี่ยของยานพาหนะที่วัดได้ทุกจุด",
            "Median of every averageVehicleSpeed reading of the traffic sensors",
        ),
        "km/h",
        "KMH",
        ("traffic",),
        "TrafficFlowObserved",
        ("averageVehicleSpeed",),
        "median of readings, from 1 km/h histogram bins (interpolated)",
        "higherIsBetter",
        25,
        median_speed,
        "ISO 37122 19 (transportation)",
        "Traffic",
    ),
    KpiDefinition(
        "parking-occupancy",
        "mobility",
        _names("อัตราการใช้ที่จอดรถ", "Parking occupancy"),
        _names(
            "สัดส่วนที่จอดรถที่มีรถจอด (ช่องจอดรายช่องและลานจอดรถ)",
            "Share of parking spaces in use (single spots and off-street car parks)",
        ),
        "%",
        "P1",
        ("parkingSpot", "offStreet"),
        "ParkingSpot, OffStreetParking",
        ("status", "availableSpotNumber", "totalSpotNumber"),
        "(Σ time-weighted occupied spots + Σ (total − mean available)) / Σ capacity × 100",
        "lowerIsBetter",
        85,
        parking_occupancy,
        "ISO 37122 19.6 (real-time parking)",
        "Parking",
    ),
    KpiDefinition(
        "streetlight-energy-per-lamp",
        "energy",
        _names("พลังงานไฟฟ้าต่อดวงโคมไฟถนน", "Street-light energy per lamp"),
        _names(
            "พลังงานไฟฟ้าที่ใช้ต่อดวงโคมในช่วงเวลา (kWh)",
            "Electricity used per lamp over the period (kWh)",
        ),
        "kWh",
        "KWH",
        ("streetlight",),
        "Streetlight",
        ("powerConsumption",),
        "Σ days (Σ lamps Σ hours hourly mean W / 1000) / lamps reporting that day",
        "lowerIsBetter",
        {"day": 1.2, "month": 36, "fiscal_year": 438},
        streetlight_kwh_per_lamp,
        "ISO 37120 7 (energy), ISO 37122 7.5",
        "Street lighting",
    ),
    KpiDefinition(
        "waste-fill-level",
        "environment",
        _names("ระดับขยะในถังเฉลี่ย", "Mean waste-container fill level"),
        _names("ค่าเฉลี่ยระดับการเติมของถังขยะอัจฉริยะ", "Mean fill level of the smart bins"),
        "%",
        "P1",
        ("waste",),
        "WasteContainer",
        ("fillingLevel",),
        "mean of fillingLevel readings × 100",
        "lowerIsBetter",
        80,
        waste_fill,
        "ISO 37122 16 (solid waste)",
        "Waste collection",
    ),
    KpiDefinition(
        "waste-collections",
        "environment",
        _names("การเก็บขยะต่อถังต่อวัน", "Waste collections per container-day"),
        _names(
            "จำนวนครั้งที่ถังถูกเทออก ต่อถังต่อวัน (ดูจากระดับขยะที่ลดลง ≥ 30%)",
            "Emptyings per container and day (fill level dropping by ≥ 30 points)",
        ),
        "1/day",
        "E49",
        ("waste",),
        "WasteContainer",
        ("fillingLevel",),
        "Σ collections / Σ container-days with data",
        "higherIsBetter",
        1.0,
        waste_collections,
        "ISO 37122 16.1",
        "Waste collection",
    ),
    KpiDefinition(
        "cashless-payment-share",
        "economy",
        _names("สัดส่วนการชำระเงินแบบไร้เงินสด", "Share of cashless payments"),
        _names(
            "สัดส่วนธุรกรรมไร้เงินสดต่อธุรกรรมทั้งหมด ณ จุดรับชำระของเมือง",
            "Cashless transactions as a share of all transactions at the city's tills",
        ),
        "%",
        "P1",
        ("cashless",),
        "CashlessPayment",
        ("cashlessTransactions", "cashTransactions"),
        "Σ cashless / (Σ cashless + Σ cash) × 100",
        "higherIsBetter",
        60,
        cashless_share,
        "ISO 37122 6 (economy)",
        "Payments",
    ),
    KpiDefinition(
        "eservices-online",
        "governance",
        _names("สัดส่วนบริการภาครัฐที่ให้บริการออนไลน์", "Share of public services online"),
        _names(
            "สัดส่วนบริการของเมืองที่ยื่นคำขอทางออนไลน์ได้",
            "Share of the city's services that can be requested online",
        ),
        "%",
        "P1",
        ("eservice",),
        "EService",
        ("online",),
        "EService with online=true / all EService × 100 (newest snapshot in the period)",
        "higherIsBetter",
        80,
        eservices_online,
        "ISO 37122 11.2 (governance)",
        "e-Services",
    ),
    KpiDefinition(
        "request-resolution-time",
        "governance",
        _names("เวลาเฉลี่ยในการแก้ไขเรื่องร้องเรียน", "Mean citizen-request resolution time"),
        _names(
            "ชั่วโมงเฉลี่ยจากการแจ้งเรื่องถึงการปิดเรื่อง (นับตามวันที่ปิดเรื่อง)",
            "Mean hours from a request's submission to its closing (by closing day)",
        ),
        "h",
        "HUR",
        ("requests",),
        "ServiceRequest",
        ("status",),
        "Σ (closed − requested) / closed requests",
        "lowerIsBetter",
        72,
        resolution_hours,
        "ISO 37122 11 (governance)",
        "Citizen requests",
    ),
)
KPI_BY_ID = {k.id: k for k in KPIS}
