"""Daily and seasonal patterns of a Thai city, as pure functions of time.

Every value the demo reports is a function of (seed, device, time) only — no state carried from
one reading to the next. That is what lets the 30-day backfill and the live simulator agree at
the seam, lets a second run fill exactly the gap, and makes a seed reproducible. Noise comes
from a hash of (seed, device, time bucket), not from a shared random generator.

Times are epoch seconds (UTC, DESIGN rule 8); patterns read the clock in Bangkok time
(UTC+7 all year: Thailand has no daylight saving, so a fixed offset is exact).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache

BANGKOK_OFFSET = 7 * 3600
DAY = 86400
HOUR = 3600
_MASK = (1 << 64) - 1

# Monthly climate of the Chachoengsao plain (approximate, shaped after Thai Meteorological
# Department normals for the lower central/eastern region), January first.
PM25_BASE = (46.0, 50.0, 42.0, 30.0, 17.0, 13.0, 12.0, 12.0, 13.0, 16.0, 24.0, 38.0)
"""Mean PM2.5 (µg/m³): high in the dry, burning season (Dec–Apr), low in the monsoon."""
TEMP_MEAN = (26.5, 28.0, 29.5, 30.5, 30.0, 29.5, 29.0, 28.8, 28.3, 28.0, 27.3, 26.0)
RAIN_DAY_P = (0.05, 0.08, 0.12, 0.25, 0.45, 0.5, 0.5, 0.55, 0.65, 0.5, 0.15, 0.05)
"""Chance that a day has an afternoon storm."""


def unit(*keys: int) -> float:
    """A uniform number in [0, 1) from integer keys (splitmix64 finaliser over ``hash``).

    Tuples of ints hash the same in every process (only str/bytes hashing is salted)."""
    x = (hash(keys) * 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return (x ^ (x >> 31)) / 18446744073709551616.0


def gauss(*keys: int) -> float:
    """Roughly standard normal noise (Irwin–Hall of three uniforms, var 1)."""
    return (unit(*keys, 1) + unit(*keys, 2) + unit(*keys, 3) - 1.5) * 2.0


def local_hour(t: float) -> float:
    """Hour of the day in Bangkok, 0 ≤ h < 24."""
    return ((t + BANGKOK_OFFSET) % DAY) / HOUR


def local_day(t: float) -> int:
    """Days since 1970-01-01 in Bangkok."""
    return int((t + BANGKOK_OFFSET) // DAY)


def weekday(t: float) -> int:
    """0 = Monday … 6 = Sunday, in Bangkok (1970-01-01 was a Thursday)."""
    return (local_day(t) + 3) % 7


@lru_cache(maxsize=4096)
def month_of_day(day: int) -> int:
    """Month (1–12) of a Bangkok day number."""
    return datetime.fromtimestamp(day * DAY, UTC).month


def month(t: float) -> int:
    return month_of_day(local_day(t))


def bump(h: float, centre: float, width: float) -> float:
    """A smooth peak of height 1 at ``centre`` (hours), wrapping around midnight."""
    d = min(abs(h - centre), 24.0 - abs(h - centre))
    return math.exp(-0.5 * (d / width) ** 2)


def traffic_factor(t: float) -> float:
    """Relative traffic (0.1 at night … ~1.0 at the weekday rush, 07–09 and 16–19)."""
    h, wd = local_hour(t), weekday(t)
    weekend = wd >= 5
    morning = bump(h, 7.9, 0.9) * (0.45 if weekend else 1.0)
    evening = bump(h, 17.5, 1.2) * (0.6 if weekend else 0.95)
    daytime = 0.5 if 9.0 <= h <= 16.0 else (0.3 if 6.0 <= h <= 21.0 else 0.0)
    night = 0.1 if h < 5.0 or h >= 23.0 else 0.15
    return min(1.1, night + max(morning, evening, daytime * (0.8 if weekend else 1.0)))


def is_dark(t: float) -> bool:
    """Street lights are on from 18:30 to 06:00 (near-equatorial: little seasonal change)."""
    h = local_hour(t)
    return h >= 18.5 or h < 6.0


# --- weather: one province-wide storm per rainy afternoon -----------------------------------


@lru_cache(maxsize=8192)
def _storm(seed: int, day: int) -> tuple[float, float, float] | None:
    """(start hour, duration h, intensity mm/h) of a day's storm, or None on a dry day."""
    if unit(seed, day, 11) >= RAIN_DAY_P[month_of_day(day) - 1]:
        return None
    start = 13.5 + 6.0 * unit(seed, day, 12)  # afternoon and evening convection
    duration = 0.75 + 2.5 * unit(seed, day, 13)
    intensity = 2.0 + 28.0 * unit(seed, day, 14) ** 2  # mostly light, sometimes a downpour
    return start, duration, intensity


@lru_cache(maxsize=65536)
def rain_in_hour(seed: int, hour: int) -> float:
    """Rainfall (mm) in one hour bucket (epoch hour)."""
    t = hour * HOUR
    storm = _storm(seed, local_day(t))
    if storm is None:
        return 0.0
    start, duration, intensity = storm
    h0 = local_hour(t)
    overlap = max(0.0, min(h0 + 1.0, start + duration) - max(h0, start))
    return round(overlap * intensity, 2)


@lru_cache(maxsize=65536)
def wetness(seed: int, hour: int) -> float:
    """Recent rain with a 1-day memory (mm-equivalent): drives rivers, washes out dust."""
    return sum(rain_in_hour(seed, hour - k) * math.exp(-k / 24.0) for k in range(72))


def rain_rate(seed: int, t: float) -> float:
    """Rain intensity (mm/h) at ``t``."""
    return rain_in_hour(seed, int(t // HOUR))


def temperature(seed: int, t: float) -> float:
    """Air temperature (°C): monthly mean, warmest at 14:00, coolest at dawn, cooled by rain."""
    h = local_hour(t)
    diurnal = 4.5 * math.cos((h - 14.0) / 24.0 * 2.0 * math.pi)
    return TEMP_MEAN[month(t) - 1] + diurnal - min(5.0, 0.6 * rain_rate(seed, t))


def humidity(seed: int, t: float) -> float:
    """Relative humidity (0–1): high at night and in the rain."""
    h = local_hour(t)
    base = (
        0.72
        - 0.16 * math.cos((h - 3.0) / 24.0 * 2.0 * math.pi)
        + (0.06 if 5 <= month(t) <= 10 else -0.04)
    )
    return max(0.3, min(0.99, base + 0.02 * rain_rate(seed, t)))


def pm25(seed: int, t: float, station: float) -> float:
    """PM2.5 (µg/m³): season × time of day × traffic, washed out by recent rain.

    ``station`` scales the site (an industrial estate > a rice field)."""
    h = local_hour(t)
    season = PM25_BASE[month(t) - 1]
    # Morning: shallow mixing layer plus rush hour; afternoon: deep mixing dilutes.
    diurnal = 1.0 + 0.35 * bump(h, 7.5, 1.5) + 0.15 * bump(h, 20.0, 2.0) - 0.3 * bump(h, 14.5, 2.0)
    washout = 1.0 / (1.0 + 0.04 * wetness(seed, int(t // HOUR)))
    return max(2.0, season * station * diurnal * washout + 6.0 * traffic_factor(t))
