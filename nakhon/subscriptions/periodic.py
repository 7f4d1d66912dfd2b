"""Periodic subscriptions (``timeInterval``): what each period's notification holds.

They do not use the outbox: each period the dispatcher queries the matching entities and sends
them; a missed period is not worth replaying.
"""

from __future__ import annotations

from typing import Any

from nakhon.storage.base import EntityQuery
from nakhon.subscriptions import notify
from nakhon.subscriptions.matcher import Active


async def periodic_entities(storage: Any, entry: Active) -> list[dict[str, Any]]:
    """The entities ``entry`` selects now (up to 1,000 per selector), rendered for it."""
    sub = entry.sub
    found: dict[str, Any] = {}
    for sel in sub.entities:
        query = EntityQuery(
            ids=[sel.id] if sel.id else None,
            id_pattern=sel.id_pattern.pattern if sel.id_pattern else None,
            type_expr=sel.types, q=sub.q, geo=sub.geo, scope_q=sub.scope_q, limit=1000)
        page = await storage.query(entry.tenant, query)
        for entity in page.entities:
            found.setdefault(entity.id, entity)
    return [
        notify.render_change(sub, {
            "id": e.id, "types": e.types, "scope": e.scope, "createdAt": e.created_at,
            "modifiedAt": e.modified_at, "attrs": e.attrs})
        for e in found.values()
    ]
