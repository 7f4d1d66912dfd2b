"""The temporal query, parsed (ETSI GS CIM 009 V1.8.1, clauses 4.11, 5.7.3/5.7.4, 6.3.12).

Parse at the edge: the HTTP adapter turns parameters (or a POST Query's ``temporalQ``) into a
:class:`TemporalQuery`; the service and storage only ever see this typed form.

Time relations are half-open, as Stellio implements them: ``before`` is ``t < timeAt``,
``after`` is ``t >= timeAt``, ``between`` is ``timeAt <= t < endTimeAt``. Without ``timerel``
the whole history is selected (Stellio and Mintaka allow this too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from nakhon.broker.validate import check_datetime
from nakhon.core.errors import BadRequestData
from nakhon.storage.history_base import (
    AGGR_METHODS,
    TIME_PROPERTIES,
    Buckets,
    TimeProperty,
    TimeWindow,
)

Timerel = Literal["before", "after", "between"]
Representation = Literal["normalized", "concise", "temporalValues", "aggregatedValues"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INSTANCE_PREFIX = "urn:ngsi-ld:attribute:instance:"

_DURATION_RE = re.compile(
    r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$"
)


@dataclass(frozen=True, slots=True)
class Period:
    """``aggrPeriodDuration``: fixed seconds, or calendar months (never both); 0/0 = whole."""

    seconds: int = 0
    months: int = 0


def parse_duration(text: str) -> Period:
    """An ISO 8601 duration (``P1D``, ``PT1H``, ``P1M``, ``PT0S``…) → :class:`Period`.

    Years and months are calendar units and cannot be mixed with the fixed ones (a bucket
    must have one length rule); fractional seconds are refused."""
    match = _DURATION_RE.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise BadRequestData(
            f"aggrPeriodDuration must be an ISO 8601 duration such as P1D or PT1H, got {text!r}."
        )
    y, mo, w, d, h, mi, s = (int(g) if g else 0 for g in match.groups())
    months = y * 12 + mo
    seconds = (((w * 7 + d) * 24 + h) * 60 + mi) * 60 + s
    if months and seconds:
        raise BadRequestData(
            "aggrPeriodDuration cannot mix years/months with weeks, days or times."
        )
    return Period(seconds=seconds, months=months)


def parse_time(value: str, name: str) -> datetime:
    """A DateTime parameter → aware UTC datetime (400 when it is not one)."""
    check_datetime(value, name)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """UTC, ``Z``, milliseconds — microseconds only when they carry information."""
    value = value.astimezone(UTC)
    spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


@dataclass(slots=True)
class TemporalQuery:
    """What to select in time and how to represent it."""

    timerel: Timerel | None = None
    time_at: datetime | None = None
    end_time_at: datetime | None = None
    timeproperty: TimeProperty = "observedAt"
    last_n: int | None = None
    representation: Representation = "normalized"
    aggr_methods: tuple[str, ...] = ()
    period: Period = Period()

    def window(self) -> TimeWindow:
        """The half-open window the time relation selects."""
        if self.timerel == "before":
            return TimeWindow(self.timeproperty, None, self.time_at)
        if self.timerel == "after":
            return TimeWindow(self.timeproperty, self.time_at, None)
        if self.timerel == "between":
            return TimeWindow(self.timeproperty, self.time_at, self.end_time_at)
        return TimeWindow(self.timeproperty)

    def buckets(self) -> Buckets:
        """Aggregation buckets: aligned on ``timeAt`` for after/between, else on the Unix
        epoch (UTC midnight for day buckets); calendar months on the origin's month."""
        origin = self.time_at if self.timerel in ("after", "between") and self.time_at else EPOCH
        assert origin is not None
        if self.period.months:
            origin = origin.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return Buckets(origin, self.period.seconds, self.period.months)


def bucket_bounds(buckets: Buckets, index: int) -> tuple[datetime, datetime]:
    """Start and end of bucket ``index`` (not for whole-window buckets)."""
    if buckets.seconds:
        start = buckets.origin + timedelta(seconds=buckets.seconds * index)
        return start, start + timedelta(seconds=buckets.seconds)
    return _add_months(buckets.origin, buckets.months * index), _add_months(
        buckets.origin, buckets.months * (index + 1)
    )


def _add_months(value: datetime, months: int) -> datetime:
    total = value.year * 12 + value.month - 1 + months
    return value.replace(year=total // 12, month=total % 12 + 1)


def build_query(
    *,
    timerel: str | None,
    time_at: str | None,
    end_time_at: str | None,
    timeproperty: str | None,
    last_n: str | int | None,
    representation: Representation,
    aggr_methods: list[str] | None,
    aggr_period: str | None,
) -> TemporalQuery:
    """Validate the temporal parameters together (each mistake is a 400 with its reason)."""
    query = TemporalQuery(representation=representation)
    if timerel is not None:
        if timerel not in ("before", "after", "between"):
            raise BadRequestData(f"timerel must be before, after or between, got {timerel!r}.")
        if not time_at:
            raise BadRequestData("timerel needs timeAt.")
        query.timerel = timerel  # type: ignore[assignment]
        query.time_at = parse_time(time_at, "timeAt")
        if timerel == "between":
            if not end_time_at:
                raise BadRequestData("timerel=between needs endTimeAt.")
            query.end_time_at = parse_time(end_time_at, "endTimeAt")
            if query.end_time_at <= query.time_at:
                raise BadRequestData("endTimeAt must be later than timeAt.")
    elif time_at or end_time_at:
        raise BadRequestData("timeAt and endTimeAt need timerel.")
    if timeproperty is not None:
        if timeproperty not in TIME_PROPERTIES:
            raise BadRequestData(
                f"timeproperty must be one of {', '.join(TIME_PROPERTIES)}, got {timeproperty!r}."
            )
        query.timeproperty = timeproperty
    if last_n is not None:
        try:
            n = int(last_n)
        except (TypeError, ValueError):
            raise BadRequestData(f"lastN must be a positive integer, got {last_n!r}.") from None
        if n < 1 or isinstance(last_n, bool):
            raise BadRequestData(f"lastN must be a positive integer, got {last_n!r}.")
        query.last_n = n
    if representation == "aggregatedValues":
        if not aggr_methods:
            raise BadRequestData("aggregatedValues needs aggrMethods (e.g. aggrMethods=avg,max).")
        unknown = [m for m in aggr_methods if m not in AGGR_METHODS]
        if unknown:
            raise BadRequestData(
                f"Unknown aggrMethods {', '.join(unknown)}; use {', '.join(AGGR_METHODS)}."
            )
        query.aggr_methods = tuple(m for m in AGGR_METHODS if m in aggr_methods)
        if aggr_period is not None:
            query.period = parse_duration(aggr_period)
    return query


def instance_id(hid: int) -> str:
    """The stable instanceId of a history row."""
    return f"{INSTANCE_PREFIX}{hid}"


def parse_instance_id(value: str) -> int | None:
    """The history id an instanceId names, or None when it names none of ours."""
    if not value.startswith(INSTANCE_PREFIX):
        return None
    rest = value[len(INSTANCE_PREFIX) :]
    return int(rest) if rest.isdigit() and len(rest) < 19 else None
