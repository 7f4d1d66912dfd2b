"""Time-window means over a series of observations (1 h, 8 h, 24 h), with a validity rule.

The Thai AQI and the alert rules both need "the mean over the last N hours". Sensors report at
any rate (every minute, every 5 minutes, hourly), so a plain mean of samples would let a burst of
readings in one hour outweigh the rest of the day. The method here follows the usual practice of
air-quality networks:

1. each clock hour's samples are averaged into one **hourly mean** (hour *h* holds samples with
   ``h <= t < h + 1 h``; an hour with at least one sample "has data");
2. the **N-hour mean** ending at ``end`` is the mean of the hourly means of the N hours ending at
   ``end`` (the hour containing ``end`` is the last one);
3. it is **valid** only when at least ``min_coverage`` (default 75 %, rounded up: 18 of 24 hours,
   6 of 8, 1 of 1) of those hours have data; otherwise the answer is ``None`` and callers must
   treat it as "not enough data", never as zero.

Times are timezone-aware UTC datetimes (DESIGN.md rule 8); naive datetimes are taken as UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

Sample = tuple[datetime, float]

MIN_COVERAGE = 0.75
"""Share of the window's hours that must have data for a mean to count."""


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (naive is taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 timestamp as aware UTC, or None when it is not one."""
    try:
        return utc(datetime.fromisoformat(text))
    except (TypeError, ValueError):
        return None


def _hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def hourly_means(samples: Iterable[Sample]) -> dict[datetime, float]:
    """Mean of each clock hour's finite samples, keyed by the hour's start (UTC)."""
    sums: dict[datetime, tuple[float, int]] = {}
    for moment, value in samples:
        if not math.isfinite(value):
            continue
        hour = _hour_start(utc(moment))
        total, count = sums.get(hour, (0.0, 0))
        sums[hour] = (total + value, count + 1)
    return {hour: total / count for hour, (total, count) in sums.items()}


def required_hours(hours: int, min_coverage: float = MIN_COVERAGE) -> int:
    """How many of ``hours`` must have data: ``ceil(hours × min_coverage)``, at least 1."""
    # A tiny epsilon keeps 24 × 0.75 = 18 exact against float noise.
    return max(1, math.ceil(hours * min_coverage - 1e-9))


def window_mean(
    samples: Iterable[Sample],
    end: datetime,
    hours: int,
    *,
    min_coverage: float = MIN_COVERAGE,
) -> float | None:
    """The ``hours``-hour mean ending at ``end`` (see the module docstring), or None."""
    if hours < 1:
        raise ValueError("hours must be at least 1")
    last = _hour_start(utc(end))
    first = last - timedelta(hours=hours - 1)
    means = hourly_means((t, v) for t, v in samples if first <= utc(t) < last + timedelta(hours=1))
    if len(means) < required_hours(hours, min_coverage):
        return None
    return sum(means.values()) / len(means)


def mean_1h(samples: Iterable[Sample], end: datetime) -> float | None:
    """1-hour mean (NO2, SO2 in the Thai AQI)."""
    return window_mean(samples, end, 1)


def mean_8h(samples: Iterable[Sample], end: datetime) -> float | None:
    """8-hour mean (O3, CO in the Thai AQI); needs 6 of 8 hours."""
    return window_mean(samples, end, 8)


def mean_24h(samples: Iterable[Sample], end: datetime) -> float | None:
    """24-hour mean (PM2.5, PM10 in the Thai AQI); needs 18 of 24 hours."""
    return window_mean(samples, end, 24)
