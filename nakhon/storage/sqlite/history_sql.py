"""SQL pieces shared by the SQLite history modules: times as epoch milliseconds, windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nakhon.storage.history_base import TimeWindow

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_of(column: str) -> str:
    return f"CAST(round((julianday({column}) - 2440587.5) * 86400000.0) AS INTEGER)"


# The time of an instance per time property, as epoch milliseconds.
TIME = {
    "observedAt": "ts_ms",
    "modifiedAt": ms_of("modified_at"),
    "createdAt": ms_of("json_extract(instance, '$.createdAt')"),
    "deletedAt": "ts_ms",  # a marker is written at its deletedAt (and window_sql adds "deleted")
}


def to_ms(value: datetime) -> int:
    """An aware datetime → epoch milliseconds (floor)."""
    return (value - EPOCH) // timedelta(milliseconds=1)


def from_ms(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(milliseconds=value)


def window_sql(window: TimeWindow, params: list[Any]) -> str:
    """``AND …`` conditions selecting the window on its time property (bounds appended to
    ``params``); ``deletedAt`` selects deletion markers only."""
    t = TIME[window.prop]
    sql = f" AND {t} IS NOT NULL"
    if window.prop == "deletedAt":
        sql += " AND deleted"
    if window.start is not None:
        sql += f" AND {t} >= ?"
        params.append(to_ms(window.start))
    if window.end is not None:
        sql += f" AND {t} < ?"
        params.append(to_ms(window.end))
    return sql


def renumber(where: str, first: int) -> str:
    """Give the window's ``?`` placeholders explicit numbers from ``first`` on."""
    parts = where.split("?")
    out = parts[0]
    for i, part in enumerate(parts[1:]):
        out += f"?{first + i}{part}"
    return out
