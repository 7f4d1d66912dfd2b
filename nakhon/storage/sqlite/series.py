"""History series on SQLite: (tenant, entity id, attribute) → an integer ``sid`` (migration 6).

History rows carry the ``sid`` instead of repeating the three strings, in the table and in its
index: measured on 288,000 rows, raw inserts went from ~101,000 to ~186,000 rows/s (a bare
table of the seven columns: ~190,000) and the file from 167 to 93 MB. The derived columns
(``ts_ms``, ``num``, ``deleted``) are written by the writer, computed here once per row, instead
of SQLite parsing the instance's JSON three times per insert.

Series rows are never deleted (retention and history deletion remove history rows only), so a
sid, once committed, stays valid for the life of the file and the writer may cache it. Keys
learnt inside a transaction join the cache only when it commits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from nakhon.broker.model import Instance

Key = tuple[str, str, str]
"""(tenant, entity id, attribute IRI)."""

# The sid of one series, as a scalar subquery: ``sid = {SID}`` seeks the index on sid.
SID = "(SELECT sid FROM history_series WHERE tenant = ? AND entity_id = ? AND attr = ?)"

INSERT_HISTORY = (
    "INSERT INTO attr_history (sid, dataset_id, observed_at, modified_at, instance, ts_ms, num,"
    " deleted, txt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

TXT_MAX = 64
"""Longest string value kept in ``txt`` (in the index); longer ones are read from the
instance. States are short words; a long text in the index would only bloat it."""

_MS_CACHE_MAX = 100_000
_ms_cache: dict[str, int | None] = {}


def sid_sql(first: int) -> str:
    """:data:`SID` with numbered parameters ``?first`` … ``?first+2``."""
    return (
        f"(SELECT sid FROM history_series WHERE tenant = ?{first}"
        f" AND entity_id = ?{first + 1} AND attr = ?{first + 2})"
    )


def instant_ms(text: object) -> int | None:
    """An ISO 8601 time → epoch milliseconds (rounded, naive read as UTC), None if unreadable:
    what ``julianday`` gave the generated column before migration 6.

    Cached by text: a backfill writes the same few hundred instants for every device."""
    if not isinstance(text, str):
        return None
    found = _ms_cache.get(text, -1)
    if found != -1:
        return found
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        ms = None
    else:
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        ms = round(at.timestamp() * 1000)
    if len(_ms_cache) >= _MS_CACHE_MAX:
        _ms_cache.clear()
    _ms_cache[text] = ms
    return ms


def numeric(inst: Instance) -> float | None:
    """The value when it is a JSON number (booleans are not), else None."""
    value = inst.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def short_text(inst: Instance) -> str | None:
    """The value when it is a string of at most :data:`TXT_MAX` characters, else None."""
    value = inst.get("value")
    if isinstance(value, str) and len(value) <= TXT_MAX:
        return value
    return None


class SeriesCache:
    """The writer's map of series keys to sids (see the module docstring)."""

    def __init__(self) -> None:
        self._sids: dict[Key, int] = {}
        self._pending: dict[Key, int] = {}

    def sids(self, conn: sqlite3.Connection, keys: Iterable[Key]) -> dict[Key, int]:
        """The sid of every key, creating missing series in the open transaction."""
        known, pending = self._sids, self._pending
        missing = [k for k in dict.fromkeys(keys) if k not in known and k not in pending]
        if missing:
            conn.executemany(
                "INSERT OR IGNORE INTO history_series (tenant, entity_id, attr) VALUES (?, ?, ?)",
                missing,
            )
            for key in missing:
                row = conn.execute(
                    "SELECT sid FROM history_series WHERE tenant = ? AND entity_id = ?"
                    " AND attr = ?",
                    key,
                ).fetchone()
                pending[key] = int(row[0])
        if not pending:
            return known
        merged = dict(known)
        merged.update(pending)
        return merged

    def committed(self) -> None:
        """The transaction committed: what it learnt is now durable."""
        if self._pending:
            self._sids.update(self._pending)
            self._pending.clear()

    def rolled_back(self) -> None:
        """The transaction rolled back: series it created are gone again."""
        self._pending.clear()


def history_records(
    rows: list[tuple[str, str, str, str | None, str | None, str, Instance]],
    sids: dict[Key, int],
) -> list[tuple[Any, ...]]:
    """attr_history rows from (tenant, entity id, attribute, datasetId, observedAt, modified
    at, instance) tuples."""
    out: list[tuple[Any, ...]] = []
    dumps = orjson.dumps
    for tenant, entity_id, attr, dataset_id, observed_at, modified, inst in rows:
        ts = instant_ms(observed_at)
        if ts is None:
            ts = instant_ms(modified)
        out.append(
            (
                sids[(tenant, entity_id, attr)],
                dataset_id,
                observed_at,
                modified,
                dumps(inst).decode(),
                ts,
                numeric(inst),
                1 if "deletedAt" in inst else 0,
                short_text(inst),
            )
        )
    return out

