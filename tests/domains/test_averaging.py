"""1/8/24-hour means and the 75 % data rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nakhon.domains.averaging import hourly_means, mean_1h, mean_8h, mean_24h, required_hours

END = datetime(2024, 3, 1, 12, 40, tzinfo=UTC)


def test_required_hours() -> None:
    assert [required_hours(24), required_hours(8), required_hours(1)] == [18, 6, 1]


def test_hourly_means_weight_each_hour_once() -> None:
    # Twelve 5-minute readings of 10 in one hour and one reading of 40 in the next.
    base = datetime(2024, 3, 1, 10, tzinfo=UTC)
    samples = [(base + timedelta(minutes=5 * i), 10.0) for i in range(12)]
    samples.append((base + timedelta(hours=1, minutes=3), 40.0))
    means = hourly_means(samples)
    assert means == {base: 10.0, base + timedelta(hours=1): 40.0}
    assert mean_8h(samples, base + timedelta(hours=1, minutes=30)) is None  # 2 of 8 hours


def test_24h_mean_needs_18_hours() -> None:
    full = [(END - timedelta(hours=h), float(h)) for h in range(24)]
    assert mean_24h(full, END) == pytest.approx(sum(range(24)) / 24)
    eighteen = full[:18]
    assert mean_24h(eighteen, END) == pytest.approx(sum(range(18)) / 18)
    assert mean_24h(full[:17], END) is None
    # Samples outside the window do not count.
    old = [(END - timedelta(hours=30 + h), 100.0) for h in range(24)]
    assert mean_24h(old, END) is None


def test_1h_mean_is_the_current_clock_hour() -> None:
    samples = [(END.replace(minute=5), 20.0), (END.replace(minute=35), 30.0)]
    assert mean_1h(samples, END) == 25.0
    assert mean_1h([(END - timedelta(hours=1), 20.0)], END) is None


def test_naive_times_are_utc_and_nan_is_ignored() -> None:
    naive_end = END.replace(tzinfo=None)
    assert mean_1h([(naive_end, 5.0), (naive_end, float("nan"))], END) == 5.0
