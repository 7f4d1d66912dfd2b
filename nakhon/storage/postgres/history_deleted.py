"""Deleted entities and past attributes on PostgreSQL (``history_base``: entity markers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from nakhon.storage.history_base import ENTITY_MARKER, DeletedEntity, DeletedQuery

from .history_sql import Params, window_sql


async def attrs_of(
    pool: asyncpg.Pool, tenant: str, entity_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Distinct attributes per entity: its series (the unique key's index), each with a row
    left (one index probe; a series outlives its rows)."""
    rows = await pool.fetch(
        "SELECT s.entity_id, s.attr FROM history_series s"
        " WHERE s.tenant = $1 AND s.entity_id = ANY($2::text[])"
        f" AND s.attr <> '{ENTITY_MARKER}'"
        " AND EXISTS (SELECT 1 FROM attr_history h WHERE h.sid = s.sid)"
        " ORDER BY 1, 2",
        tenant,
        list(entity_ids),
    )
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(r[1])
    return out


async def deleted_entities(pool: asyncpg.Pool, query: DeletedQuery) -> list[DeletedEntity]:
    """The newest entity marker of each entity that does not exist now (the marker series of a
    tenant through history_series_by_attr); with a window, only entities with an instance in
    it. One statement."""
    p = Params()
    sql = (
        "SELECT DISTINCT ON (s.entity_id) s.entity_id, h.instance"
        " FROM history_series s JOIN attr_history h ON h.sid = s.sid"
        f" WHERE s.tenant = {p.add(query.tenant)} AND s.attr = '{ENTITY_MARKER}'"
    )
    if query.ids is not None:
        sql += f" AND s.entity_id = ANY({p.add(list(query.ids))}::text[])"
    if query.types is not None:
        sql += f" AND jsonb_exists_any(h.instance -> 'types', {p.add(list(query.types))}::text[])"
    sql += (
        " AND NOT EXISTS (SELECT 1 FROM entities e WHERE e.tenant = s.tenant"
        " AND e.id = s.entity_id)"
    )
    if query.window is not None:
        # Same columns under another alias: _window speaks of "h".
        inner = window_sql(query.window, p).replace("h.", "w.")
        attrs = f" AND ws.attr = ANY({p.add(list(query.attrs))}::text[])" if query.attrs else ""
        sql += (
            " AND EXISTS (SELECT 1 FROM history_series ws JOIN attr_history w ON w.sid = ws.sid"
            f" WHERE ws.tenant = s.tenant AND ws.entity_id = s.entity_id{attrs}{inner})"
        )
    sql += " ORDER BY s.entity_id, h.ts DESC, h.hid DESC"
    rows = await pool.fetch(sql, *p.values)
    out: list[DeletedEntity] = []
    for r in rows:
        doc: dict[str, Any] = r[1]
        scope = doc.get("scope")
        out.append(
            DeletedEntity(
                r[0],
                list(doc.get("types") or []),
                list(scope) if scope is not None else None,
                str(doc.get("createdAt") or doc.get("deletedAt")),
                str(doc.get("deletedAt")),
            )
        )
    return out
