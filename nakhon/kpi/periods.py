"""Calculation periods: Thai calendar days, months and government fiscal years.

Time is UTC inside and Asia/Bangkok outside (DESIGN rule 8): a KPI day is a Bangkok calendar
day, so its UTC window is ``[D-1 17:00Z, D 17:00Z)``. The Thai government fiscal year runs
1 October – 30 September and is named by the year it ends in: fiscal year 2025 (พ.ศ. 2568) is
1 Oct 2024 – 30 Sep 2025. Labels show Buddhist Era years (ค.ศ. + 543) in Thai and Common Era
years in English.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

BANGKOK = ZoneInfo("Asia/Bangkok")
BE_OFFSET = 543

Kind = Literal["day", "month", "fiscal_year"]
KINDS: tuple[Kind, ...] = ("day", "month", "fiscal_year")
FREQUENCY: dict[Kind, str] = {"day": "daily", "month": "monthly", "fiscal_year": "yearly"}
"""The Smart Data Model's ``calculationFrequency`` value of each period kind."""

TH_MONTHS = (
    "มกราคม",
    "กุมภาพันธ์",
    "มีนาคม",
    "เมษายน",
    "พฤษภาคม",
    "มิถุนายน",
    "กรกฎาคม",
    "สิงหาคม",
    "กันยายน",
    "ตุลาคม",
    "พฤศจิกายน",
    "ธันวาคม",
)
TH_MONTHS_SHORT = (
    "ม.ค.",
    "ก.พ.",
    "มี.ค.",
    "เม.ย.",
    "พ.ค.",
    "มิ.ย.",
    "ก.ค.",
    "ส.ค.",
    "ก.ย.",
    "ต.ค.",
    "พ.ย.",
    "ธ.ค.",
)
EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def be_year(ce_year: int) -> int:
    """The Buddhist Era year (พ.ศ.) of a Common Era year."""
    return ce_year + BE_OFFSET


def fiscal_year(day: date) -> int:
    """The Thai government fiscal year (CE) a day belongs to: October starts the next one."""
    return day.year + 1 if day.month >= 10 else day.year


def bangkok_date(moment: datetime) -> date:
    """The Bangkok calendar date of an aware moment."""
    return moment.astimezone(BANGKOK).date()


def day_start_utc(day: date) -> datetime:
    """Bangkok midnight starting ``day``, as an aware UTC datetime."""
    return datetime.combine(day, time(0), BANGKOK).astimezone(UTC)


def days(first: date, last: date) -> Iterator[date]:
    """Every day from ``first`` to ``last`` inclusive."""
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """One calculation period: ``first`` and ``last`` are inclusive Bangkok dates."""

    kind: Kind
    first: date
    last: date

    @property
    def id(self) -> str:
        """Stable key: ``2024-10-01``, ``2024-10`` or ``FY2025``."""
        if self.kind == "day":
            return self.first.isoformat()
        if self.kind == "month":
            return self.first.strftime("%Y-%m")
        return f"FY{fiscal_year(self.first)}"

    @property
    def frequency(self) -> str:
        return FREQUENCY[self.kind]

    def label(self, lang: str) -> str:
        """How a person reads the period: BE years in Thai, CE years in English."""
        f = self.first
        if self.kind == "day":
            if lang == "th":
                return f"{f.day} {TH_MONTHS_SHORT[f.month - 1]} {be_year(f.year)}"
            return f"{f.day} {EN_MONTHS[f.month - 1][:3]} {f.year}"
        if self.kind == "month":
            if lang == "th":
                return f"{TH_MONTHS[f.month - 1]} {be_year(f.year)}"
            return f"{EN_MONTHS[f.month - 1]} {f.year}"
        fy = fiscal_year(f)
        if lang == "th":
            return f"ปีงบประมาณ พ.ศ. {be_year(fy)} (ต.ค. {be_year(fy - 1)} – ก.ย. {be_year(fy)})"
        return f"Fiscal year {fy} (Oct {fy - 1} – Sep {fy})"

    def labels(self) -> dict[str, str]:
        return {"th": self.label("th"), "en": self.label("en")}

    def days(self) -> Iterator[date]:
        return days(self.first, self.last)

    @property
    def start_utc(self) -> datetime:
        return day_start_utc(self.first)

    @property
    def end_utc(self) -> datetime:
        """Exclusive end: Bangkok midnight after the last day."""
        return day_start_utc(self.last + timedelta(days=1))

    def previous(self) -> Period:
        """The period of the same kind just before this one (for trends)."""
        return period_of(self.kind, self.first - timedelta(days=1))

    def next(self) -> Period:
        return period_of(self.kind, self.last + timedelta(days=1))


def period_of(kind: Kind, day: date) -> Period:
    """The period of ``kind`` that holds ``day``."""
    if kind == "day":
        return Period(kind, day, day)
    if kind == "month":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return Period(kind, first, following - timedelta(days=1))
    fy = fiscal_year(day)
    return Period(kind, date(fy - 1, 10, 1), date(fy, 9, 30))


def periods_touching(kind: Kind, first: date, last: date) -> list[Period]:
    """Every period of ``kind`` that holds at least one day of ``[first, last]``, oldest first."""
    out: list[Period] = []
    p = period_of(kind, first)
    while p.first <= last:
        out.append(p)
        p = p.next()
    return out


def parse_period_id(value: str) -> Period:
    """The inverse of :attr:`Period.id` (raises ValueError on anything else)."""
    if value.startswith("FY"):
        fy = int(value[2:])
        return period_of("fiscal_year", date(fy, 1, 1))
    if len(value) == 7:
        return period_of("month", date.fromisoformat(value + "-01"))
    return period_of("day", date.fromisoformat(value))
