"""History series on PostgreSQL: (tenant, entity id, attribute) → an integer ``sid``
(migration 0006), found or created by the writer for the rows of a transaction.

Series rows are never deleted (retention and history deletion remove history rows only), so
a sid, once committed, stays valid for the life of the database — also for other processes —
and the writer may cache it. Keys learnt inside a transaction join the cache only after it
commits (:meth:`SeriesCache.committed`): a rolled-back transaction takes its series with it.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from .codec import SeriesKey

# The series of a batch that the cache lacks, in one statement: those that exist, plus those
# inserted now. Sorted inserts: two writers creating the same series wait for each other in one
# order (no deadlock). A series another transaction committed after this statement's snapshot
# is in neither half (ON CONFLICT waited for it): _SERIES_SELECT, a new snapshot, finds it.
_SERIES_ENSURE = """
WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS k(tenant, entity_id, attr)),
old AS (SELECT s.sid, s.tenant, s.entity_id, s.attr FROM history_series s
        JOIN k ON s.tenant = k.tenant AND s.entity_id = k.entity_id AND s.attr = k.attr),
new AS (INSERT INTO history_series (tenant, entity_id, attr)
        SELECT k.tenant, k.entity_id, k.attr FROM k WHERE NOT EXISTS (SELECT 1 FROM old
         WHERE old.tenant = k.tenant AND old.entity_id = k.entity_id AND old.attr = k.attr)
        ORDER BY 1, 2, 3
        ON CONFLICT DO NOTHING
        RETURNING sid, tenant, entity_id, attr)
SELECT sid, tenant, entity_id, attr FROM old UNION ALL SELECT sid, tenant, entity_id, attr FROM new
"""
_SERIES_SELECT = """
SELECT s.sid, s.tenant, s.entity_id, s.attr FROM history_series s
JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(tenant, entity_id, attr)
  ON s.tenant = k.tenant AND s.entity_id = k.entity_id AND s.attr = k.attr
"""

CACHE_MAX = 262_144
"""Most series ids a writer keeps (about 300 bytes each); past it the cache starts afresh."""


class SeriesCache:
    """The writer's map of series keys to committed sids (see the module docstring)."""

    def __init__(self) -> None:
        self.known: dict[SeriesKey, int] = {}

    async def resolve(
        self, conn: asyncpg.Connection, keys: Iterable[SeriesKey]
    ) -> tuple[dict[SeriesKey, int], dict[SeriesKey, int]]:
        """(the sid of every key, those found or created in this transaction): from the
        cache, else one statement for all missing keys, a second one only when another
        transaction created some at the same moment. Hand the second map to
        :meth:`committed` once the transaction has committed."""
        sids: dict[SeriesKey, int] = {}
        missing: dict[SeriesKey, None] = {}  # ordered set
        for key in keys:
            if key in sids or key in missing:
                continue
            sid = self.known.get(key)
            if sid is None:
                missing[key] = None
            else:
                sids[key] = sid
        if not missing:
            return sids, {}
        wanted = list(missing)
        args = [[k[0] for k in wanted], [k[1] for k in wanted], [k[2] for k in wanted]]
        got = await conn.fetch(_SERIES_ENSURE, *args)
        if len(got) < len(wanted):
            got = await conn.fetch(_SERIES_SELECT, *args)
        learnt = {(r[1], r[2], r[3]): r[0] for r in got}
        if len(learnt) < len(wanted):  # cannot happen: the insert waited for them
            raise RuntimeError("history series could not be found nor created")
        sids.update(learnt)
        return sids, learnt

    def committed(self, learnt: dict[SeriesKey, int]) -> None:
        """The transaction that learnt ``learnt`` committed: those ids are now durable."""
        if learnt:
            if len(self.known) + len(learnt) > CACHE_MAX:
                self.known.clear()
            self.known.update(learnt)
