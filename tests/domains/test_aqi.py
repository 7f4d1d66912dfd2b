"""Thai AQI worked examples: every band edge and points inside bands, both breakpoint eras.

Expected values are computed by hand here with I = (Ij − Ii) / (Xj − Xi) × (X − Xi) + Ii,
rounded half up, independently of nakhon.domains.aqi.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from nakhon.domains import aqi
from nakhon.domains.aqi import Pollutant, band_for_aqi, station_aqi, sub_index

NEW = date(2024, 1, 15)  # 2023 table
OLD = date(2022, 1, 15)  # pre-2023-06-01 PM2.5 bands


def hand(x: float, xi: float, xj: float, ii: int, ij: int) -> int:
    value = (
        Decimal(ij - ii)
        / (Decimal(str(xj)) - Decimal(str(xi)))
        * (Decimal(str(x)) - Decimal(str(xi)))
        + ii
    )
    return int(value.quantize(Decimal(1), rounding="ROUND_HALF_UP"))


# (pollutant, concentration, expected AQI) — band edges of the 2023 table.
EDGES_NEW = [
    ("pm25", 0.0, 0),
    ("pm25", 15.0, 25),
    ("pm25", 15.1, 26),
    ("pm25", 25.0, 50),
    ("pm25", 25.1, 51),
    ("pm25", 37.5, 100),
    ("pm25", 37.6, 101),
    ("pm25", 75.0, 200),
    ("pm25", 75.1, 201),
    ("pm25", 112.5, 300),  # chosen top breakpoint: 75.1 + (75.0 − 37.6)
    ("pm10", 50, 25),
    ("pm10", 51, 26),
    ("pm10", 80, 50),
    ("pm10", 120, 100),
    ("pm10", 180, 200),
    ("pm10", 181, 201),
    ("pm10", 240, 300),  # 181 + (180 − 121)
    ("o3", 35, 25),
    ("o3", 36, 26),
    ("o3", 50, 50),
    ("o3", 70, 100),
    ("o3", 120, 200),
    ("o3", 121, 201),
    ("o3", 170, 300),  # 121 + (120 − 71)
    ("co", 4.4, 25),
    ("co", 4.5, 26),
    ("co", 6.4, 50),
    ("co", 9.0, 100),
    ("co", 30.0, 200),
    ("co", 30.1, 201),
    ("co", 51.0, 300),  # 30.1 + (30.0 − 9.1)
    ("no2", 60, 25),
    ("no2", 61, 26),
    ("no2", 106, 50),
    ("no2", 170, 100),
    ("no2", 340, 200),
    ("no2", 341, 201),
    ("no2", 510, 300),  # 341 + (340 − 171)
    ("so2", 100, 25),
    ("so2", 101, 26),
    ("so2", 200, 50),
    ("so2", 300, 100),
    ("so2", 400, 200),
    ("so2", 401, 201),
    ("so2", 500, 300),  # 401 + (400 − 301)
]


@pytest.mark.parametrize(("pollutant", "x", "expected"), EDGES_NEW)
def test_band_edges_2023_table(pollutant: str, x: float, expected: int) -> None:
    assert sub_index(pollutant, x, NEW).aqi == expected


EDGES_OLD = [
    (0, 0),
    (25, 25),
    (26, 26),
    (37, 50),
    (38, 51),
    (50, 100),
    (51, 101),
    (90, 200),
    (91, 201),
    (130, 300),  # 91 + (90 − 51)
]


@pytest.mark.parametrize(("x", "expected"), EDGES_OLD)
def test_band_edges_pm25_before_2023(x: float, expected: int) -> None:
    assert sub_index("pm25", x, OLD).aqi == expected


INSIDE = [
    # PM2.5 2023 table, inside each band, with the hand formula.
    ("pm25", NEW, 10.0, hand(10.0, 0, 15.0, 0, 25)),  # 16.67 → 17
    ("pm25", NEW, 20.0, hand(20.0, 15.1, 25.0, 26, 50)),  # 37.88 → 38
    ("pm25", NEW, 30.0, hand(30.0, 25.1, 37.5, 51, 100)),  # 70.36 → 70
    ("pm25", NEW, 50.0, hand(50.0, 37.6, 75.0, 101, 200)),  # 133.82 → 134
    ("pm25", NEW, 150.0, hand(150.0, 75.1, 112.5, 201, 300)),  # beyond 300: same line
    ("pm25", OLD, 30, hand(30, 26, 37, 26, 50)),  # 34.73 → 35
    ("pm25", OLD, 45, hand(45, 38, 50, 51, 100)),  # 79.58 → 80
    ("pm25", OLD, 70, hand(70, 51, 90, 101, 200)),  # 149.23 → 149
    ("pm10", NEW, 100, hand(100, 81, 120, 51, 100)),
    ("o3", NEW, 60, hand(60, 51, 70, 51, 100)),
    ("co", NEW, 7.7, hand(7.7, 6.5, 9.0, 51, 100)),
    ("no2", NEW, 250, hand(250, 171, 340, 101, 200)),
    ("so2", NEW, 150, hand(150, 101, 200, 26, 50)),
]


@pytest.mark.parametrize(("pollutant", "when", "x", "expected"), INSIDE)
def test_inside_bands(pollutant: str, when: date, x: float, expected: int) -> None:
    assert sub_index(pollutant, x, when).aqi == expected


def test_hand_values_are_what_we_think() -> None:
    assert [hand(10.0, 0, 15.0, 0, 25), hand(20.0, 15.1, 25.0, 26, 50)] == [17, 38]
    assert hand(50.0, 37.6, 75.0, 101, 200) == 134
    assert hand(150.0, 75.1, 112.5, 201, 300) == 399


def test_eras_differ_for_pm25_only() -> None:
    assert sub_index("pm25", 37.5, NEW).aqi == 100
    assert sub_index("pm25", 37.5, OLD).aqi == 50  # truncated to 37 → top of "good"
    assert sub_index("pm10", 100, NEW).aqi == sub_index("pm10", 100, OLD).aqi


def test_era_is_chosen_by_bangkok_date() -> None:
    # 2023-05-31T17:30Z is 2023-06-01 00:30 in Bangkok: the new table applies.
    late_may_utc = datetime(2023, 5, 31, 17, 30, tzinfo=UTC)
    assert sub_index("pm25", 37.5, late_may_utc).aqi == 100
    assert sub_index("pm25", 37.5, late_may_utc - timedelta(hours=1)).aqi == 50
    assert sub_index("pm25", 37.5, date(2023, 6, 1)).aqi == 100
    assert sub_index("pm25", 37.5, date(2023, 5, 31)).aqi == 50


def test_concentrations_are_truncated_to_the_table_precision() -> None:
    assert sub_index("pm25", 15.09, NEW).concentration == Decimal("15.0")
    assert sub_index("pm25", 15.09, NEW).aqi == 25  # never in the 15.0|15.1 gap
    assert sub_index("pm25", 37.59, NEW).aqi == 100
    assert sub_index("pm10", 50.9, NEW).aqi == 25
    assert sub_index("co", 4.49, NEW).aqi == 25
    assert sub_index("pm25", 25.99, OLD).aqi == 25  # old table: whole µg/m³


def test_bad_concentrations_are_refused() -> None:
    with pytest.raises(ValueError):
        sub_index("pm25", -1.0, NEW)
    with pytest.raises(ValueError):
        sub_index("pm25", float("nan"), NEW)
    with pytest.raises(ValueError):
        sub_index("benzene", 1.0, NEW)


def test_bands_have_thai_and_english_names_and_colours() -> None:
    bands = aqi.bands()
    assert [b.low for b in bands] == [0, 26, 51, 101, 201]
    assert bands[0].th == "คุณภาพอากาศดีมาก" and bands[0].en == "very good"
    assert bands[4].high is None and bands[4].colour == "#CD0000"
    assert band_for_aqi(100).en == "moderate"
    assert band_for_aqi(101).name("th") == "เริ่มมีผลกระทบต่อสุขภาพ"
    assert band_for_aqi(999).number == 5


def test_station_aqi_is_the_highest_sub_index() -> None:
    result = station_aqi({"pm25": 50.0, "pm10": 100, "o3": 20, "no2": None}, NEW)
    assert result is not None
    assert result.aqi == 134 and result.dominant is Pollutant.PM25
    assert result.band.number == 4
    assert set(result.sub_indices) == {Pollutant.PM25, Pollutant.PM10, Pollutant.O3}
    assert station_aqi({"pm25": None}, NEW) is None
    # Tie: PM2.5 listed first wins.
    tie = station_aqi({"pm10": 120, "pm25": 37.5}, NEW)
    assert tie is not None and tie.aqi == 100 and tie.dominant is Pollutant.PM25


def test_station_aqi_from_series_uses_each_pollutants_window() -> None:
    end = datetime(2024, 2, 1, 12, 30, tzinfo=UTC)
    hours = [end - timedelta(hours=h) for h in range(24)]
    series = {
        "pm25": [(t, 50.0) for t in hours],  # 24 h mean 50 → 134
        "no2": [(end - timedelta(minutes=10), 250.0)],  # 1 h → 147
        "o3": [(hours[0], 200.0)],  # 1 of 8 hours: not enough data, left out
    }
    result = aqi.station_aqi_from_series(series, end)
    assert result is not None
    assert result.sub_indices[Pollutant.PM25].aqi == 134
    assert result.sub_indices[Pollutant.NO2].aqi == hand(250, 171, 340, 101, 200)
    assert Pollutant.O3 not in result.sub_indices
    assert result.dominant is Pollutant.NO2


def test_unit_conversion() -> None:
    # 100 µg/m³ of O3 at 25 °C: 100 × 24.45 / 48.00 = 50.94 ppb
    assert aqi.ugm3_to_ppb("o3", 100.0) == pytest.approx(50.9375)
