"""The demo city's pure parts: geography, fleet plan, daily and seasonal patterns, payloads."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from nakhon.demo import patterns as pt
from nakhon.demo.fleet import allocate, device_doc, plan
from nakhon.demo.geo import load_province
from nakhon.demo.kinds import DOMAINS, KINDS
from nakhon.demo.live import encode
from nakhon.domains.catalogue import builtin_domains


def _bkk(year: int, month: int, day: int, hour: float) -> float:
    """Epoch seconds of a Bangkok wall-clock time."""
    base = datetime(year, month, day, tzinfo=UTC).timestamp()
    return base + hour * 3600 - pt.BANGKOK_OFFSET


def test_province_has_real_codes_and_names() -> None:
    cco = load_province("Chachoengsao")
    assert (cco.code, cco.name_th) == (24, "ฉะเชิงเทรา")
    assert len(cco.districts) == 11 and len(cco.subdistricts) == 93
    mueang = next(d for d in cco.districts if d.code == 2401)
    assert (mueang.name_en, mueang.name_th) == ("Mueang Chachoengsao", "เมืองฉะเชิงเทรา")
    assert load_province("ฉะเชิงเทรา") == cco == load_province("24")
    for sub in cco.subdistricts:  # all inside the province's rough bounding box
        assert sub.code // 100 == sub.district.code
        assert 13.2 < sub.lat < 14.1 and 100.8 < sub.lon < 102.0
    with pytest.raises(ValueError, match="available: chachoengsao"):
        load_province("Atlantis")


def test_fleet_covers_every_kind_and_domain_and_is_reproducible() -> None:
    assert sum(allocate(500).values()) == 500
    assert sum(allocate(30).values()) == 30 and min(allocate(30).values()) == 1
    assert allocate(5) == {**{k.key: 0 for k in KINDS}, **allocate(5)}
    assert {k.domain for k in KINDS} == set(DOMAINS)
    catalogue = {t.type for d in builtin_domains() for t in d.types}
    assert {k.entity_type for k in KINDS} <= catalogue
    cco = load_province("Chachoengsao")
    a, b = plan(cco, 40, 1), plan(cco, 40, 1)
    assert [(d.device_id, d.lat, d.lon, d.params) for d in a] == [
        (d.device_id, d.lat, d.lon, d.params) for d in b
    ]
    assert [d.lat for d in plan(cco, 40, 2)] != [d.lat for d in a]
    doc = device_doc(a[0], cco)
    assert doc["location"]["type"] == "Point"
    assert {"name", "alternateName", "districtCode", "subdistrictCode"} <= {
        s["name"] for s in doc["static_attributes"]
    }


def test_daily_patterns() -> None:
    weekday_rush = _bkk(2026, 11, 23, 8.0)  # a Monday
    assert pt.weekday(weekday_rush) == 0
    assert pt.traffic_factor(weekday_rush) > 0.9
    assert pt.traffic_factor(_bkk(2026, 11, 23, 17.5)) > 0.85
    assert pt.traffic_factor(_bkk(2026, 11, 23, 3.0)) < 0.2
    assert pt.traffic_factor(_bkk(2026, 11, 22, 8.0)) < pt.traffic_factor(weekday_rush)  # Sunday
    assert pt.is_dark(_bkk(2026, 11, 23, 22.0)) and pt.is_dark(_bkk(2026, 11, 23, 5.0))
    assert not pt.is_dark(_bkk(2026, 11, 23, 12.0))


def test_pm25_is_higher_in_the_dry_season_and_in_the_morning() -> None:
    def day_mean(month: int) -> float:
        return sum(pt.pm25(1, _bkk(2026, month, 10, h), 1.0) for h in range(24)) / 24

    assert day_mean(2) > 2 * day_mean(8)
    assert day_mean(2) > 37.5 > day_mean(7)  # February breaks the Thai 24 h standard
    assert pt.pm25(1, _bkk(2026, 2, 10, 7.5), 1.0) > pt.pm25(1, _bkk(2026, 2, 10, 14.5), 1.0)


def test_rain_falls_in_the_rainy_season_and_raises_rivers() -> None:
    def rainy_days(month: int) -> int:
        return sum(
            1
            for day in range(1, 29)
            if any(pt.rain_rate(3, _bkk(2026, month, day, h)) > 0 for h in range(24))
        )

    assert rainy_days(9) > rainy_days(1)
    wet = max(range(1, 29), key=lambda d: pt.wetness(3, int(_bkk(2026, 9, d, 23) // 3600)))
    assert pt.wetness(3, int(_bkk(2026, 9, wet, 23) // 3600)) > 5


def test_counters_only_grow_and_lights_follow_the_night() -> None:
    cco = load_province("Chachoengsao")
    fleet = plan(cco, 200, 5)
    light = next(d for d in fleet if d.kind.key == "light")
    meter = next(d for d in fleet if d.kind.key == "meter")
    times = [_bkk(2026, 11, 20, h / 4) for h in range(4 * 48)]
    kwh = [light.reading(5, t, 900)["kwh"] for t in times]
    energy = [meter.reading(5, t, 900)["e"] for t in times]
    assert kwh == sorted(kwh) and energy == sorted(energy) and kwh[-1] > kwh[0]
    assert light.reading(5, _bkk(2026, 11, 20, 21), 900)["on"] == "on"
    assert light.reading(5, _bkk(2026, 11, 20, 13), 900) == {
        "on": "off",
        "lvl": 0.0,
        "w": 0.0,
        "kwh": light.reading(5, _bkk(2026, 11, 20, 13), 900)["kwh"],
    }


def test_cashless_counts_add_up_whatever_the_reporting_period() -> None:
    cco = load_province("Chachoengsao")
    pay = next(d for d in plan(cco, 200, 5) if d.kind.key == "pay")
    start = _bkk(2026, 11, 20, 0)

    def total(period: int) -> int:
        readings = [
            pay.reading(5, start + k * period, period) for k in range(1, 86400 // period + 1)
        ]
        return sum(r["cl"] + r["cash"] for r in readings)

    hourly, five_minutes = total(3600), total(300)
    assert hourly > 0
    assert abs(hourly - five_minutes) / hourly < 0.1


def test_payload_encodings() -> None:
    cco = load_province("Chachoengsao")
    fleet = plan(cco, 30, 1)
    light = next(d for d in fleet if d.kind.fmt == "ul")
    aq = next(d for d in fleet if d.kind.key == "aq")
    at = "2026-11-22T12:00:00.000Z"
    assert encode(light, {"on": "on", "lvl": 1.0}, at) == b"2026-11-22T12:00:00.000Z|on|on|lvl|1.0"
    assert orjson.loads(encode(aq, {"p25": 12.5}, at)) == {"p25": 12.5, "TimeInstant": at}
