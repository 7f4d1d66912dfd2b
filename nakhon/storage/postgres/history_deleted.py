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
    """Distinct attributes per entity: a recursive skip through the index (one probe per
    attribute, however long its history)."""
    rows = await pool.fetch(
        "WITH RECURSIVE s(eid, attr) AS ("
        " SELECT k.eid, (SELECT min(h.attr) FROM attr_history h"
        "  WHERE h.tenant = $1 AND h.entity_id = k.eid) FROM unnest($2::text[]) AS k(eid)"
        " UNION ALL"
        " SELECT s.eid, (SELECT min(h.attr) FROM attr_history h"
        "  WHERE h.tenant = $1 AND h.entity_id = s.eid AND h.attr > s.attr)"
        " FROM s WHERE s.attr IS NOT NULL)"
        f" SELECT eid, attr FROM s WHERE attr IS NOT NULL AND attr <> '{ENTITY_MARKER}'"
        " ORDER BY eid, attr",
        tenant,
        list(entity_ids),
    )
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(r[1])
    return out


async def deleted_entities(pool: asyncpg.Pool, query: DeletedQuery) -> list[DeletedEntity]:
    """The newest entity marker of each entity that does not exist now (partial index on the
    markers); with a window, only entities with an instance in it. One statement."""
    p = Params()
    sql = (
        "SELECT DISTINCT ON (h.entity_id) h.entity_id, h.instance FROM attr_history h"
        f" WHERE h.tenant = {p.add(query.tenant)} AND h.attr = '{ENTITY_MARKER}'"
    )
    if query.ids is not None:
        sql += f" AND h.entity_id = ANY({p.add(list(query.ids))}::text[])"
    if query.types is not None:
        sql += f" AND jsonb_exists_any(h.instance -> 'types', {p.add(list(query.types))}::text[])"
    sql += (
        " AND NOT EXISTS (SELECT 1 FROM entities e WHERE e.tenant = h.tenant"
        " AND e.id = h.entity_id)"
    )
    if query.window is not None:
        # Same columns under another alias: _window speaks of "h".
        inner = window_sql(query.window, p).replace("h.", "w.")
        attrs = f" AND w.attr = ANY({p.add(list(query.attrs))}::text[])" if query.attrs else ""
        sql += (
            " AND EXISTS (SELECT 1 FROM attr_history w WHERE w.tenant = h.tenant"
            f" AND w.entity_id = h.entity_id{attrs}{inner})"
        )
    sql += " ORDER BY h.entity_id, h.ts DESC, h.hid DESC"
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
