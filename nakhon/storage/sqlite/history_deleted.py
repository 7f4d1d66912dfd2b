"""Deleted entities and past attributes on SQLite (``history_base``: entity markers)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from nakhon.storage.history_base import ENTITY_MARKER, DeletedEntity, DeletedQuery

from .history_sql import window_sql


def attrs_of(
    conn: sqlite3.Connection, tenant: str, entity_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Attributes per entity that still have history (series whose rows are all deleted are
    left out: a series row outlives its history)."""
    out: dict[str, list[str]] = {}
    for eid in entity_ids:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT s.attr FROM history_series s WHERE s.tenant = ? AND s.entity_id = ?"
                f" AND s.attr <> '{ENTITY_MARKER}'"
                " AND EXISTS (SELECT 1 FROM attr_history h WHERE h.sid = s.sid) ORDER BY s.attr",
                (tenant, eid),
            )
        ]
        if names:
            out[eid] = names
    return out


def deleted_entities(conn: sqlite3.Connection, query: DeletedQuery) -> list[DeletedEntity]:
    """Entity markers (series of attribute '@entity') of entities that do not exist now, the
    newest per entity; then, with a window, those with an instance in it."""
    params: list[Any] = [query.tenant]
    sql = (
        "SELECT m.entity_id, m.instance FROM history_keyed m"
        f" WHERE m.tenant = ? AND m.attr = '{ENTITY_MARKER}'"
    )
    if query.ids is not None:
        sql += f" AND m.entity_id IN ({', '.join('?' * len(query.ids))})"
        params.extend(query.ids)
    if query.types is not None:
        sql += (
            " AND EXISTS (SELECT 1 FROM json_each(m.instance, '$.types') j"
            f" WHERE j.value IN ({', '.join('?' * len(query.types))}))"
        )
        params.extend(query.types)
    sql += (
        " AND NOT EXISTS (SELECT 1 FROM entities e WHERE e.tenant = m.tenant"
        " AND e.id = m.entity_id) ORDER BY m.entity_id, m.ts_ms DESC, m.hid DESC"
    )
    found: dict[str, DeletedEntity] = {}
    for eid, doc in conn.execute(sql, params):
        if eid not in found:
            found[eid] = _deleted(eid, orjson.loads(doc))
    if query.window is None:
        return list(found.values())
    out: list[DeletedEntity] = []
    for eid, item in found.items():
        wparams: list[Any] = [query.tenant, eid]
        where = ""
        if query.attrs:
            where = f" AND attr IN ({', '.join('?' * len(query.attrs))})"
            wparams.extend(query.attrs)
        where += window_sql(query.window, wparams)
        row = conn.execute(
            f"SELECT 1 FROM history_keyed WHERE tenant = ? AND entity_id = ?{where} LIMIT 1",
            wparams,
        ).fetchone()
        if row is not None:
            out.append(item)
    return out


def _deleted(entity_id: str, doc: dict[str, Any]) -> DeletedEntity:
    scope = doc.get("scope")
    return DeletedEntity(
        entity_id,
        list(doc.get("types") or []),
        list(scope) if scope is not None else None,
        str(doc.get("createdAt") or doc.get("deletedAt")),
        str(doc.get("deletedAt")),
    )
