"""The kinds of device in the demo city, across the seven domains.

Entity types come from the domain catalogue (``nakhon/domains/data/domains.json``); attribute
names follow the Smart Data Models where the model has them (``pm25``, ``LAeq``, ``waterLevel``,
``currentLevel``/``alertLevel``, ``intensity``, ``availableSpotNumber``, ``fillingLevel``,
``powerState``, ``totalActiveEnergyImport`` …) and are Nakhon's own for the Nakhon types
(CashlessPayment, EService). Devices send short object ids, as real ones do, and the registry's
mapping names and types them — that mapping is the point of going through the real ingest path.
Some kinds speak UltraLight 2.0, the others JSON, as a real city's mixed fleet does.
"""

from __future__ import annotations

import random
from typing import Any

from nakhon.demo import samplers as s
from nakhon.demo.geo import Subdistrict
from nakhon.demo.model import Attr, DemoDevice, Kind

INDUSTRIAL = frozenset({2404, 2405, 2409})
"""Bang Pakong, Ban Pho and Plaeng Yao: industrial estates, dustier air."""

E_SERVICES = (
    ("Building permit", "ขออนุญาตก่อสร้างอาคาร"),
    ("Land and building tax", "ชำระภาษีที่ดินและสิ่งปลูกสร้าง"),
    ("Business licence", "ใบอนุญาตประกอบกิจการ"),
    ("Elderly allowance registration", "ลงทะเบียนเบี้ยยังชีพผู้สูงอายุ"),
    ("Civil registration appointment", "จองคิวงานทะเบียนราษฎร"),
    ("Complaints and requests", "ร้องเรียนร้องทุกข์"),
    ("Venue booking", "ขอใช้สถานที่ราชการ"),
    ("Waste collection fee", "ชำระค่าธรรมเนียมเก็บขยะ"),
)
SITES_PARKING = ("office", "market", "hospital-mall")
SITES_INDOOR = ("school", "hospital", "elderly-centre")


def _text(name: str, value: Any) -> dict[str, Any]:
    return {"name": name, "type": "Text", "value": value}


def _num(
    name: str, value: float, unit: str | None = None, *, integer: bool = False
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "type": "Integer" if integer else "Number",
        "value": int(value) if integer else round(value, 3),
    }
    if unit:
        doc["unitCode"] = unit
    return doc


def _flood_static(dev: DemoDevice) -> list[dict[str, Any]]:
    return [
        _num("alertLevel", dev.params["alert"], "MTR"),
        _num("dangerLevel", dev.params["danger"], "MTR"),
        _num("referenceLevel", dev.params["base"], "MTR"),
        _text("stationID", f"CCO-FL-{dev.index:03d}"),
    ]


def _flood_params(rng: random.Random, sub: Subdistrict) -> dict[str, float]:
    base, gain = rng.uniform(0.3, 1.2), rng.uniform(0.8, 1.6)
    alert = base + gain * rng.uniform(1.3, 1.9)
    return {"base": base, "gain": gain, "alert": alert, "danger": alert + 0.8, "mount": alert + 2.3}


def _waste_params(rng: random.Random, sub: Subdistrict) -> dict[str, float]:
    period = float(rng.choice((2, 3)))
    return {
        "period": period,
        "phase": rng.uniform(0.0, period),
        "rate": rng.uniform(0.6, 1.05) / period,
    }


KINDS: tuple[Kind, ...] = (
    # --- environment -------------------------------------------------------------------------
    Kind(
        "aq",
        "AirQualityObserved",
        "environment",
        "Air quality station",
        "สถานีตรวจวัดคุณภาพอากาศ",
        "json",
        300,
        30,
        (
            Attr("p25", "pm25", unit="GQ"),
            Attr("p10", "pm10", unit="GQ"),
            Attr("o3", "o3", unit="61"),
            Attr("no2", "no2", unit="61"),
            Attr("co", "co", unit="59"),
            Attr("t", "temperature", unit="CEL"),
            Attr("h", "relativeHumidity"),
        ),
        s.air_quality,
        lambda r, sub: {
            "station": r.uniform(0.85, 1.15) * (1.25 if sub.district.code in INDUSTRIAL else 1.0)
        },
    ),
    Kind(
        "noise",
        "NoiseLevelObserved",
        "environment",
        "Noise sensor",
        "เครื่องวัดระดับเสียง",
        "json",
        120,
        20,
        (Attr("laeq", "LAeq", unit="2N"), Attr("lamax", "LAmax", unit="2N")),
        s.noise_level,
        lambda r, sub: {"site": r.uniform(0.6, 1.3)},
    ),
    Kind(
        "water",
        "WaterObserved",
        "environment",
        "River level gauge",
        "สถานีวัดระดับน้ำ",
        "json",
        300,
        15,
        (Attr("lvl", "waterLevel", unit="MTR"), Attr("q", "flow", unit="MQS")),
        s.water,
        lambda r, sub: {
            "base": r.uniform(0.8, 2.5),
            "gain": r.uniform(0.6, 1.4),
            "flow": r.uniform(2.0, 20.0),
        },
    ),
    Kind(
        "flood",
        "FloodMonitoring",
        "environment",
        "Flood monitoring station",
        "สถานีเฝ้าระวังน้ำท่วม",
        "json",
        300,
        10,
        (
            Attr("lvl", "currentLevel", unit="MTR"),
            Attr("dist", "measuredDistance", unit="MTR"),
            Attr("status", "floodLevelStatus", "Text"),
        ),
        s.flood,
        _flood_params,
        _flood_static,
    ),
    Kind(
        "wx",
        "WeatherObserved",
        "environment",
        "Weather station",
        "สถานีตรวจอากาศ",
        "json",
        300,
        8,
        (
            Attr("t", "temperature", unit="CEL"),
            Attr("h", "relativeHumidity"),
            Attr("rain", "precipitation", unit="MMT"),
            Attr("ws", "windSpeed", unit="MTS"),
            Attr("wd", "windDirection", "Integer", "DD"),
            Attr("p", "atmosphericPressure", unit="A97"),
        ),
        s.weather,
    ),
    Kind(
        "waste",
        "WasteContainer",
        "environment",
        "Waste container",
        "ถังขยะอัจฉริยะ",
        "ul",
        600,
        55,
        (Attr("f", "fillingLevel"), Attr("t", "temperature", unit="CEL")),
        s.waste,
        _waste_params,
    ),
    # --- mobility ----------------------------------------------------------------------------
    Kind(
        "traffic",
        "TrafficFlowObserved",
        "mobility",
        "Traffic counter",
        "จุดนับปริมาณจราจร",
        "json",
        60,
        40,
        (
            Attr("i", "intensity", "Integer"),
            Attr("v", "averageVehicleSpeed", unit="KMH"),
            Attr("o", "occupancy"),
            Attr("c", "congested", "Boolean"),
        ),
        s.traffic,
        lambda r, sub: {"capacity": r.uniform(600, 2400), "free": r.uniform(45, 90)},
    ),
    Kind(
        "spot",
        "ParkingSpot",
        "mobility",
        "Parking bay sensor",
        "เซนเซอร์ช่องจอดรถ",
        "ul",
        120,
        80,
        (Attr("s", "status", "Text"),),
        s.parking_spot,
        lambda r, sub: {"site": float(r.randrange(3))},
        lambda dev: [_text("category", SITES_PARKING[int(dev.params["site"])])],
    ),
    Kind(
        "park",
        "OffStreetParking",
        "mobility",
        "Car park",
        "ลานจอดรถ",
        "json",
        120,
        10,
        (Attr("free", "availableSpotNumber", "Integer"), Attr("occ", "occupancy")),
        s.off_street_parking,
        lambda r, sub: {"site": float(r.randrange(3)), "total": float(r.randrange(40, 400))},
        lambda dev: [_num("totalSpotNumber", dev.params["total"], integer=True)],
    ),
    Kind(
        "ev",
        "EVChargingStation",
        "mobility",
        "EV charging station",
        "สถานีอัดประจุรถยนต์ไฟฟ้า",
        "json",
        120,
        12,
        (Attr("avail", "availableCapacity", "Integer"), Attr("st", "status", "Text")),
        s.ev_charging,
        lambda r, sub: {"sockets": float(r.randrange(2, 9))},
        lambda dev: [
            _num("capacity", dev.params["sockets"], integer=True),
            _text("socketType", "Type2"),
        ],
    ),
    # --- energy ------------------------------------------------------------------------------
    Kind(
        "light",
        "Streetlight",
        "energy",
        "Street light",
        "ไฟส่องสว่างสาธารณะ",
        "ul",
        300,
        120,
        (
            Attr("on", "powerState", "Text"),
            Attr("lvl", "illuminanceLevel"),
            Attr("w", "powerConsumption", unit="WTT"),
            Attr("kwh", "energyConsumed", unit="KWH"),
        ),
        s.streetlight,
        lambda r, sub: {"watts": r.uniform(60, 150)},
    ),
    Kind(
        "meter",
        "ThreePhaseAcMeasurement",
        "energy",
        "Building electricity meter",
        "มิเตอร์ไฟฟ้าอาคาร",
        "json",
        300,
        25,
        (
            Attr("p", "totalActivePower", unit="KWT"),
            Attr("e", "totalActiveEnergyImport", unit="KWH"),
        ),
        s.energy_meter,
        lambda r, sub: {"peak": r.uniform(20, 300)},
    ),
    # --- people ------------------------------------------------------------------------------
    Kind(
        "wifi",
        "AccessPoint",
        "people",
        "Public Wi-Fi hotspot",
        "จุดให้บริการ Wi-Fi สาธารณะ",
        "json",
        300,
        40,
        (Attr("n", "connectedClients", "Integer"), Attr("st", "status", "Text")),
        s.wifi,
        lambda r, sub: {"max": r.uniform(20, 120)},
        lambda dev: [_text("ssid", "Chachoengsao Free Wi-Fi")],
    ),
    # --- economy -----------------------------------------------------------------------------
    Kind(
        "pay",
        "CashlessPayment",
        "economy",
        "Market payments",
        "การชำระเงินในตลาด",
        "json",
        300,
        15,
        (
            Attr("cl", "cashlessTransactions", "Integer"),
            Attr("cash", "cashTransactions", "Integer"),
            Attr("share", "cashlessShare"),
            Attr("thb", "cashlessAmount"),
        ),
        s.cashless,
        lambda r, sub: {
            "size": r.uniform(50, 600),
            "night": float(r.random() < 0.4),
            "share": r.uniform(0.35, 0.65),
            "ticket": r.uniform(60, 250),
        },
        lambda dev: [_text("category", "nightMarket" if dev.params["night"] else "freshMarket")],
    ),
    # --- living ------------------------------------------------------------------------------
    Kind(
        "indoor",
        "IndoorEnvironmentObserved",
        "living",
        "Indoor environment sensor",
        "เซนเซอร์สภาพแวดล้อมในอาคาร",
        "json",
        300,
        12,
        (
            Attr("t", "temperature", unit="CEL"),
            Attr("h", "relativeHumidity"),
            Attr("co2", "co2", unit="59"),
            Attr("n", "peopleCount", "Integer"),
        ),
        s.indoor,
        lambda r, sub: {"site": float(r.randrange(3)), "cap": r.uniform(30, 400)},
        lambda dev: [_text("category", SITES_INDOOR[int(dev.params["site"])])],
    ),
    # --- governance --------------------------------------------------------------------------
    Kind(
        "eserv",
        "EService",
        "governance",
        "e-Service",
        "บริการอิเล็กทรอนิกส์",
        "json",
        300,
        8,
        (
            Attr("req", "requestRate"),
            Attr("online", "onlineShare"),
            Attr("wait", "averageWaitingTime", unit="MIN"),
        ),
        s.eservice,
        lambda r, sub: {"size": r.uniform(5, 60), "online": r.uniform(0.3, 0.7)},
        lambda dev: [
            _text("serviceName", E_SERVICES[(dev.index - 1) % len(E_SERVICES)][0]),
            _text("serviceNameTh", E_SERVICES[(dev.index - 1) % len(E_SERVICES)][1]),
            # Whether citizens can use it online (most can; a few are counter-only).
            {"name": "online", "type": "Boolean", "value": dev.index % 4 != 0},
        ],
    ),
)

DOMAINS = ("environment", "economy", "mobility", "energy", "people", "living", "governance")
