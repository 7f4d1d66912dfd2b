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
from datetime import UTC, datetime
from typing import Any

import orjson

from nakhon.broker.model import Instance
from nakhon.storage.base import Outcome
from nakhon.storage.rows import deletion_markers, numeric

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

    def sid(self, conn: sqlite3.Connection, key: Key) -> int:
        """The sid of ``key``, creating the series in the open transaction if it is new."""
        found = self._sids.get(key)
        if found is None:
            found = self._pending.get(key)
            if found is None:
                conn.execute(
                    "INSERT OR IGNORE INTO history_series (tenant, entity_id, attr)"
                    " VALUES (?, ?, ?)",
                    key,
                )
                row = conn.execute(
                    "SELECT sid FROM history_series WHERE tenant = ? AND entity_id = ?"
                    " AND attr = ?",
                    key,
                ).fetchone()
                found = self._pending[key] = int(row[0])
        return found

    def committed(self) -> None:
        """The transaction committed: what it learnt is now durable."""
        if self._pending:
            self._sids.update(self._pending)
            self._pending.clear()

    def rolled_back(self) -> None:
        """The transaction rolled back: series it created are gone again."""
        self._pending.clear()


def history_records(
    series: SeriesCache,
    conn: sqlite3.Connection,
    tenant: str,
    entity_id: str,
    outcome: Outcome,
    now: str,
    out: list[tuple[Any, ...]],
) -> None:
    """Append to ``out`` the attr_history rows of what one mutation wrote, deletion markers
    included (``now``: the transaction time — the markers' deletedAt, and the modification
    time of an instance without one). One pass, no intermediate rows: at backfill rates every
    tuple and lookup per instance shows in the profile."""
    written = outcome.changed
    if outcome.removed or outcome.deleted:
        written = [*written, *deletion_markers(outcome, now)]
    dumps = orjson.dumps
    ms = instant_ms
    last_iri: str | None = None
    sid = 0
    for iri, inst in written:
        if iri != last_iri:  # a bulk append writes one attribute's instances in a row
            sid = series.sid(conn, (tenant, entity_id, iri))
            last_iri = iri
        observed = inst.get("observedAt")
        modified = inst.get("modifiedAt") or inst.get("deletedAt") or now
        ts = ms(observed)
        if ts is None:
            ts = ms(modified)
        out.append(
            (
                sid,
                inst.get("datasetId"),
                observed,
                modified,
                dumps(inst).decode(),
                ts,
                numeric(inst),
                1 if "deletedAt" in inst else 0,
                short_text(inst),
            )
        )
