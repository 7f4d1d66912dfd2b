"""SQL pieces shared by the PostgreSQL history modules: parameters, times, windows."""

from __future__ import annotations

from typing import Any

from nakhon.storage.history_base import TimeWindow

TIME = {
    "observedAt": "h.ts",
    "modifiedAt": "h.modified_at",
    "createdAt": "(h.instance ->> 'createdAt')::timestamptz",
    "deletedAt": "h.ts",  # a marker is written at its deletedAt (and window_sql adds "deleted")
}

class Params:
    """Collects positional parameters and hands out their ``$n`` placeholders."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def window_sql(window: TimeWindow, p: Params) -> str:
    """``AND …`` conditions selecting the window on its time property (alias ``h``);
    ``deletedAt`` selects deletion markers only."""
    t = TIME[window.prop]
    sql = f" AND {t} IS NOT NULL"
    if window.prop == "deletedAt":
        sql += " AND h.deleted"
    if window.start is not None:
        sql += f" AND {t} >= {p.add(window.start)}"
    if window.end is not None:
        sql += f" AND {t} < {p.add(window.end)}"
    return sql
