"""Periods: Bangkok days, months, the Thai fiscal year (Oct–Sep) and Buddhist Era labels."""

from __future__ import annotations

from datetime import UTC, date, datetime

from nakhon.kpi.definitions import histogram_median
from nakhon.kpi.periods import (
    bangkok_date,
    be_year,
    day_start_utc,
    fiscal_year,
    parse_period_id,
    period_of,
    periods_touching,
)


def test_fiscal_year_boundary() -> None:
    assert fiscal_year(date(2024, 9, 30)) == 2024
    assert fiscal_year(date(2024, 10, 1)) == 2025
    sep30 = period_of("fiscal_year", date(2024, 9, 30))
    oct1 = period_of("fiscal_year", date(2024, 10, 1))
    assert (sep30.first, sep30.last) == (date(2023, 10, 1), date(2024, 9, 30))
    assert (oct1.first, oct1.last) == (date(2024, 10, 1), date(2025, 9, 30))
    assert oct1.previous() == sep30
    assert (sep30.id, oct1.id) == ("FY2024", "FY2025")


def test_buddhist_era_labels() -> None:
    assert be_year(2024) == 2567
    fy = period_of("fiscal_year", date(2024, 10, 1))
    assert fy.label("th") == "ปีงบประมาณ พ.ศ. 2568 (ต.ค. 2567 – ก.ย. 2568)"
    assert fy.label("en") == "Fiscal year 2025 (Oct 2024 – Sep 2025)"
    assert period_of("month", date(2024, 10, 15)).label("th") == "ตุลาคม 2567"
    assert period_of("month", date(2024, 10, 15)).label("en") == "October 2024"
    assert period_of("day", date(2024, 9, 30)).label("th") == "30 ก.ย. 2567"


def test_bangkok_days_in_utc() -> None:
    assert day_start_utc(date(2024, 10, 1)) == datetime(2024, 9, 30, 17, tzinfo=UTC)
    # 17:00Z on 30 September is already 1 October in Bangkok.
    assert bangkok_date(datetime(2024, 9, 30, 17, tzinfo=UTC)) == date(2024, 10, 1)
    assert bangkok_date(datetime(2024, 9, 30, 16, 59, tzinfo=UTC)) == date(2024, 9, 30)


def test_months_and_touching() -> None:
    feb = period_of("month", date(2024, 2, 10))
    assert (feb.first, feb.last) == (date(2024, 2, 1), date(2024, 2, 29))
    months = periods_touching("month", date(2024, 9, 29), date(2024, 10, 2))
    assert [p.id for p in months] == ["2024-09", "2024-10"]
    for pid in ("2024-09-30", "2024-10", "FY2025"):
        assert parse_period_id(pid).id == pid


def test_histogram_median() -> None:
    # values 10.2, 10.7, 11.5 → bins 10: 2, 11: 1; half = 1.5 → 10 + 1.5/2 = 10.75
    assert histogram_median({"10": 2, "11": 1}, 1.0) == 10.75
    assert histogram_median({}, 1.0) is None
