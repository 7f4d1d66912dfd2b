"""Thai Air Quality Index (AQI) of the Pollution Control Department (กรมควบคุมมลพิษ).

Method (``data/thai-aqi.json``; docs/domains.md has the reasoning):

* **Sub-index** of one pollutant: find the band whose concentration range ``[Xi, Xj]`` holds the
  concentration ``X`` and interpolate linearly ``I = (Ij − Ii) / (Xj − Xi) × (X − Xi) + Ii``
  between the band's AQI limits ``[Ii, Ij]``; round half up to a whole number.
* **Averaging windows**: PM2.5 and PM10 24-hour means, O3 and CO 8-hour means, NO2 and SO2
  1-hour means (:mod:`nakhon.domains.averaging`, 75 % of the hours needed).
* **Station AQI** = the highest sub-index; its pollutant is the dominant one.
* **Breakpoints by date**: the table in force since 2023-06-01 (24 h PM2.5 standard 37.5 µg/m³)
  applies to observations on or after that date, the older PM2.5 bands to earlier ones. The date
  is the observation's date in Thailand (Asia/Bangkok), since that is where the rule applied.
* **Concentrations are truncated** (not rounded) to the precision of the breakpoint table
  (PM2.5 and CO to 0.1; PM10, O3, NO2, SO2 and the pre-2023 PM2.5 to whole numbers) before the
  band is looked up, so that every value falls into exactly one band: the table's ranges leave
  gaps (15.0 | 15.1) that an unrounded 15.05 would fall into, and truncation (as in the US EPA
  method the PCD index follows) never moves a reading into a higher band than the data shows.
* **Top band** (AQI 201 and up, "affects health") has no official upper breakpoint. We choose
  ``AQI 300`` at ``Xi + (width of the 101–200 band)``: the top band continues the 101–200 band's
  slope, so the index stays continuous and keeps rising with the concentration, and readings
  beyond that breakpoint are extrapolated on the same line (no cap: hiding how bad a burning-
  season reading is would mislead). E.g. PM2.5 (2023 table) 75.1 → 201, 112.5 → 300.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from nakhon.domains.averaging import Sample, window_mean

BANGKOK = ZoneInfo("Asia/Bangkok")
NEW_TABLE_SINCE = date(2023, 6, 1)
TOP_BAND_AQI = 300
"""The AQI chosen for the top band's upper breakpoint (see the module docstring)."""


class Pollutant(StrEnum):
    """The six pollutants of the Thai AQI (values are the Smart Data Model attribute names)."""

    PM25 = "pm25"
    PM10 = "pm10"
    O3 = "o3"
    CO = "co"
    NO2 = "no2"
    SO2 = "so2"


_TABLE_KEY = {
    Pollutant.PM25: "pm25_24h_ugm3",
    Pollutant.PM10: "pm10_24h_ugm3",
    Pollutant.O3: "o3_8h_ppb",
    Pollutant.CO: "co_8h_ppm",
    Pollutant.NO2: "no2_1h_ppb",
    Pollutant.SO2: "so2_1h_ppb",
}
WINDOW_HOURS: dict[Pollutant, int] = {
    Pollutant.PM25: 24,
    Pollutant.PM10: 24,
    Pollutant.O3: 8,
    Pollutant.CO: 8,
    Pollutant.NO2: 1,
    Pollutant.SO2: 1,
}
UNITS: dict[Pollutant, str] = {
    Pollutant.PM25: "µg/m³",
    Pollutant.PM10: "µg/m³",
    Pollutant.O3: "ppb",
    Pollutant.CO: "ppm",
    Pollutant.NO2: "ppb",
    Pollutant.SO2: "ppb",
}


@dataclass(frozen=True, slots=True)
class Band:
    """One AQI band: number 1–5, AQI limits (``high`` None for the top band), names, colour."""

    number: int
    low: int
    high: int | None
    en: str
    th: str
    colour: str

    def name(self, lang: str) -> str:
        return self.th if lang == "th" else self.en


@dataclass(frozen=True, slots=True)
class Breakpoints:
    """Concentration ranges of one pollutant, band by band, and the table's decimal places."""

    ranges: tuple[tuple[Decimal, Decimal | None], ...]
    places: int


@dataclass(frozen=True, slots=True)
class SubIndex:
    pollutant: Pollutant
    concentration: Decimal  # truncated to the table's precision
    aqi: int
    band: Band


@dataclass(frozen=True, slots=True)
class StationAqi:
    aqi: int
    band: Band
    dominant: Pollutant
    sub_indices: dict[Pollutant, SubIndex]


@cache
def _table() -> dict[str, Any]:
    text = resources.files("nakhon.domains").joinpath("data/thai-aqi.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def bands() -> tuple[Band, ...]:
    """The five AQI bands, lowest first."""
    return tuple(
        Band(i + 1, b["aqi"][0], b["aqi"][1], b["en"], b["th"], b["colour"])
        for i, b in enumerate(_table()["bands"])
    )


def _places(number: Any) -> int:
    text = repr(number)
    return len(text.split(".", 1)[1]) if "." in text else 0


@cache
def _breakpoints(pollutant: Pollutant, old: bool) -> Breakpoints:
    table = _table()
    key = _TABLE_KEY[pollutant]
    raw = table["before_2023_06_01"].get(key) if old else None
    raw = raw or table["breakpoints"][key]
    places = max(_places(n) for pair in raw for n in pair if n is not None)
    ranges = tuple((Decimal(str(lo)), None if hi is None else Decimal(str(hi))) for lo, hi in raw)
    return Breakpoints(ranges, places)


def observation_date(when: date | datetime) -> date:
    """The Thai calendar date of an observation (aware datetimes are converted to Bangkok)."""
    if isinstance(when, datetime):
        return when.astimezone(BANGKOK).date() if when.tzinfo else when.date()
    return when


def breakpoints(pollutant: Pollutant | str, when: date | datetime) -> Breakpoints:
    """The breakpoint table of ``pollutant`` in force on ``when``."""
    return _breakpoints(Pollutant(pollutant), observation_date(when) < NEW_TABLE_SINCE)


def truncate(value: float | Decimal, places: int) -> Decimal:
    """``value`` cut (towards zero) to ``places`` decimals; via str so 37.5 stays 37.5."""
    exponent = Decimal(1).scaleb(-places)
    return Decimal(str(value)).quantize(exponent, rounding=ROUND_DOWN)


def band_for_aqi(aqi: int) -> Band:
    """The band an AQI value falls in."""
    for band in bands():
        if band.high is None or aqi <= band.high:
            return band
    return bands()[-1]  # pragma: no cover - the top band is open


def sub_index(pollutant: Pollutant | str, concentration: float, when: date | datetime) -> SubIndex:
    """The AQI sub-index of one averaged concentration (in the units of :data:`UNITS`).

    Raises ValueError for a negative or non-finite concentration (a sensor fault, not air)."""
    pol = Pollutant(pollutant)
    if not math.isfinite(concentration) or concentration < 0:
        raise ValueError(f"{pol.value} concentration must be a finite number ≥ 0")
    table = breakpoints(pol, when)
    x = truncate(concentration, table.places)
    all_bands = bands()
    for number, (lo, hi) in enumerate(table.ranges):
        band = all_bands[number]
        if hi is None:
            # Top band: upper breakpoint chosen as lo + width of the band below (module doc).
            below_lo, below_hi = table.ranges[number - 1]
            assert below_hi is not None
            hi, aqi_hi = lo + (below_hi - below_lo), Decimal(TOP_BAND_AQI)
        elif x > hi:
            continue
        else:
            aqi_hi = Decimal(band.high if band.high is not None else TOP_BAND_AQI)
        aqi_lo = Decimal(band.low)
        value = (aqi_hi - aqi_lo) / (hi - lo) * (x - lo) + aqi_lo
        aqi = int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
        return SubIndex(pol, x, aqi, band)
    raise AssertionError("unreachable: the top band is open")  # pragma: no cover


def station_aqi(
    concentrations: Mapping[Pollutant | str, float | None], when: date | datetime
) -> StationAqi | None:
    """The station AQI from averaged concentrations (None values are skipped).

    None when no pollutant has a value. Ties go to the pollutant listed first in
    :class:`Pollutant` (PM2.5 before PM10 …), so the answer is deterministic."""
    subs: dict[Pollutant, SubIndex] = {}
    for name, value in concentrations.items():
        if value is not None:
            sub = sub_index(name, value, when)
            subs[sub.pollutant] = sub
    if not subs:
        return None
    order = list(Pollutant)
    dominant = max(subs.values(), key=lambda s: (s.aqi, -order.index(s.pollutant)))
    return StationAqi(dominant.aqi, band_for_aqi(dominant.aqi), dominant.pollutant, subs)


def station_aqi_from_series(
    series: Mapping[Pollutant | str, list[Sample]], end: datetime
) -> StationAqi | None:
    """The station AQI at ``end`` from raw time series: each pollutant is averaged over its
    standard window (24 h, 8 h, 1 h) ending at ``end``; windows without enough data are left
    out (see :mod:`nakhon.domains.averaging`)."""
    means: dict[Pollutant | str, float | None] = {}
    for name, samples in series.items():
        pol = Pollutant(name)
        means[pol] = window_mean(samples, end, WINDOW_HOURS[pol])
    return station_aqi(means, end)


# Molar masses (g/mol) for µg/m³ ↔ ppb at 25 °C and 1 atm (molar volume 24.45 L), the
# reference conditions of the Thai standards; many sensors report gases in µg/m³.
MOLAR_MASS = {Pollutant.O3: 48.00, Pollutant.NO2: 46.01, Pollutant.SO2: 64.07, Pollutant.CO: 28.01}
MOLAR_VOLUME = 24.45


def ugm3_to_ppb(pollutant: Pollutant | str, ugm3: float) -> float:
    """A gas concentration in µg/m³ as ppb (for CO, mg/m³ → ppm is the same formula)."""
    return ugm3 * MOLAR_VOLUME / MOLAR_MASS[Pollutant(pollutant)]
