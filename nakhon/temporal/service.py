"""Temporal use cases: retrieve/query the evolution of entities, temporal provision, retention.

Every function checks authorisation through :class:`~nakhon.core.auth.Access` (DESIGN rule 2)
and reaches storage only through the ``Storage`` and ``HistoryStore`` contracts.

Which entities a temporal query returns is decided on their *current* state (id, type,
idPattern, q, scopeQ, geo-query, attrs), paged like /entities; the history of those entities
is then read for the time window. Instances are paged per attribute as clause 6.3.10 says
(see :func:`_page_instances`). Entities deleted since are found through their entity markers
(:mod:`nakhon.temporal.deleted`); deleted attributes through their history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from nakhon.broker import ops
from nakhon.broker.model import Entity, Instance
from nakhon.broker.ops_attrs import merge_instance
from nakhon.broker.service import Broker
from nakhon.core.auth import Access, Principal
from nakhon.core.errors import ResourceNotFound
from nakhon.storage.base import EntityQuery, Outcome, Storage, WriteOp
from nakhon.storage.history_base import (
    AggregateQuery,
    AggregateRow,
    DeletedQuery,
    HistoryStore,
    InstanceQuery,
    StoredInstance,
    TimeWindow,
)
from nakhon.temporal import deleted, provision
from nakhon.temporal.model import TemporalQuery, bucket_bounds


class TemporalStorage(Storage, HistoryStore, Protocol):
    """An engine with both contracts (both engines are)."""


@dataclass(slots=True)
class PageRange:
    """A partial answer (206): the time range actually covered, in the paging direction.

    Forward (no lastN): ``start`` is where the answer begins, ``end`` the exclusive bound the
    next request uses as ``timeAt``. Backward (lastN): ``start`` is the newest bound and
    ``end`` the oldest time returned, the next request's ``before`` bound."""

    start: datetime
    end: datetime
    size: int | None


@dataclass(slots=True)
class TemporalEntity:
    """One entity's answer: its current state (for id/type) and the selected history;
    ``deleted_at`` when the entity does not exist now (``entity`` is then its marker's stub)."""

    entity: Entity
    instances: dict[str, list[StoredInstance]] = field(default_factory=dict)
    aggregates: dict[str, list[AggregateRow]] = field(default_factory=dict)
    deleted_at: str | None = None
    kinds: dict[str, str] = field(default_factory=dict)  # types of attributes gone since


@dataclass(slots=True)
class TemporalResult:
    entities: list[TemporalEntity]
    count: int | None = None
    range: PageRange | None = None


class Temporal:
    """The temporal API over one engine."""

    def __init__(
        self, storage: TemporalStorage, access: Access, broker: Broker, *, instance_limit: int
    ) -> None:
        self.storage = storage
        self.access = access
        self.broker = broker
        self.instance_limit = instance_limit

    # --- consumption (5.7.3 / 5.7.4) ----------------------------------------------------------

    async def retrieve(
        self,
        principal: Principal,
        tenant: str,
        entity_id: str,
        query: TemporalQuery,
        attrs: Sequence[str] | None,
    ) -> TemporalResult:
        """The temporal evolution of one entity, also when it was deleted since (404 when it
        neither exists nor has an entity marker)."""
        await self.access.require_read(principal, tenant)
        try:
            entity = await self.broker.retrieve_entity(principal, tenant, entity_id)
        except ResourceNotFound:
            found = await self.storage.history_deleted(DeletedQuery(tenant, ids=[entity_id]))
            if not found:
                raise
            result = await self._history(tenant, [deleted.stub(found[0])], query, attrs, None)
            result.entities[0].deleted_at = found[0].deleted_at
            return result
        return await self._history(tenant, [entity], query, attrs, None)

    async def query(
        self,
        principal: Principal,
        tenant: str,
        selection: EntityQuery,
        query: TemporalQuery,
    ) -> TemporalResult:
        """The temporal evolution of the entities a query selects (one page of entities),
        those deleted since included (after the existing ones, see ``temporal.deleted``)."""
        await self.access.require_read(principal, tenant)
        page = await self.broker.query_entities(principal, tenant, selection)
        gone = await deleted.find(self.storage, tenant, selection, query.window())
        if not gone:
            return await self._history(tenant, page.entities, query, selection.attrs, page.count)
        total = deleted.known_total(selection, page)
        if total is None and (selection.count or len(page.entities) < selection.limit):
            counted = await self.broker.query_entities(
                principal, tenant, deleted.counting(selection)
            )
            total = counted.count or 0
        merged = deleted.merge(selection, gone, page, total or 0)
        result = await self._history(
            tenant, merged.entities, query, selection.attrs, merged.count
        )
        for item in result.entities:
            item.deleted_at = merged.deleted_at.get(item.entity.id)
        return result

    async def _history(
        self,
        tenant: str,
        entities: list[Entity],
        query: TemporalQuery,
        attrs: Sequence[str] | None,
        count: int | None,
    ) -> TemporalResult:
        pairs: list[tuple[str, str]] = []
        past: dict[str, list[str]] = {}
        if not attrs and entities:
            past = await self.storage.history_attrs(tenant, [e.id for e in entities])
        for entity in entities:
            # The attributes named, else the entity's current ones and then those it has
            # history of (attributes deleted since, with their deletion markers).
            if attrs:
                names = list(attrs)
            else:
                names = list(entity.attrs)
                names += [a for a in past.get(entity.id, ()) if a not in entity.attrs]
            pairs.extend((entity.id, a) for a in names)
        out = [TemporalEntity(e) for e in entities]
        by_id = {t.entity.id: t for t in out}
        result = TemporalResult(out, count)
        if not pairs:
            return result
        if query.representation == "aggregatedValues":
            rows = await self.storage.history_aggregate(
                AggregateQuery(
                    tenant, pairs, query.window(), query.buckets(), frozenset(query.aggr_methods)
                )
            )
            rows, result.range = self._page_buckets(rows, query)
            for row in rows:
                by_id[row.entity_id].aggregates.setdefault(row.attr, []).append(row)
            await self._past_kinds(tenant, result.entities)
            return result
        found, result.range = await self._page_instances(tenant, pairs, query)
        for inst in found:
            by_id[inst.entity_id].instances.setdefault(inst.attr, []).append(inst)
        return result

    async def _past_kinds(self, tenant: str, items: list[TemporalEntity]) -> None:
        """The attribute type of aggregated attributes the entity no longer has: that of their
        newest instance (a deletion marker keeps the type of what it deleted)."""
        gone = [(t.entity.id, a) for t in items for a in t.aggregates if a not in t.entity.attrs]
        if not gone:
            return
        newest = await self.storage.history_instances(
            InstanceQuery(tenant, gone, TimeWindow(), 1, newest_first=True)
        )
        by_id = {t.entity.id: t for t in items}
        for row in newest:
            by_id[row.entity_id].kinds[row.attr] = str(row.instance.get("type", "Property"))

    async def _page_instances(
        self, tenant: str, pairs: list[tuple[str, str]], query: TemporalQuery
    ) -> tuple[list[StoredInstance], PageRange | None]:
        """At most ``instance_limit`` instances per attribute (clause 6.3.10).

        With ``lastN`` ≤ the limit the answer is complete. Otherwise one more instance than
        the limit is read per attribute; where an attribute has more, the answer is cut at one
        time for all attributes — forward (oldest first) without lastN, backward (newest
        first) with it — so that the next request, starting at the reported bound, continues
        exactly where this one stopped. The answer is then 206 with a Content-Range."""
        limit = self.instance_limit
        window = query.window()
        last_n = query.last_n
        if last_n is not None and last_n <= limit:
            rows = await self.storage.history_instances(
                InstanceQuery(tenant, pairs, window, last_n, newest_first=True)
            )
            return _oldest_first(rows), None
        backward = last_n is not None
        rows = await self.storage.history_instances(
            InstanceQuery(tenant, pairs, window, limit + 1, newest_first=backward)
        )
        per_pair: dict[tuple[str, str], list[StoredInstance]] = {}
        for row in rows:
            per_pair.setdefault((row.entity_id, row.attr), []).append(row)
        over = [lst[limit].time for lst in per_pair.values() if len(lst) > limit]
        cut_times = [t for t in over if t is not None]
        if not cut_times:
            return _oldest_first(rows) if backward else rows, None
        if not backward:
            cut = min(cut_times)
            kept = [r for r in rows if r.time is not None and r.time < cut]
            if not kept:  # every pair starts with more than `limit` equal times
                kept = [r for r in rows if r.time is not None and r.time <= cut]
            start = window.start or min(r.time for r in kept if r.time is not None)
            return kept, PageRange(start, cut, None)
        cut = max(cut_times)
        kept = [r for r in rows if r.time is not None and r.time > cut]
        oldest = min((r.time for r in kept if r.time is not None), default=cut)
        newest = window.end or max((r.time for r in kept if r.time is not None), default=cut)
        return _oldest_first(kept), PageRange(newest, oldest, last_n)

    def _page_buckets(
        self, rows: list[AggregateRow], query: TemporalQuery
    ) -> tuple[list[AggregateRow], PageRange | None]:
        """lastN keeps the newest N buckets per attribute; otherwise at most the instance limit
        of buckets per attribute, cut at one bucket for all (forward paging)."""
        groups: dict[tuple[str, str, str | None], list[AggregateRow]] = {}
        for row in rows:
            groups.setdefault((row.entity_id, row.attr, row.dataset_id), []).append(row)
        if query.last_n is not None:
            n = min(query.last_n, self.instance_limit)
            return [r for g in groups.values() for r in g[-n:]], None
        limit = self.instance_limit
        over = [g[limit].bucket for g in groups.values() if len(g) > limit]
        if not over:
            return rows, None
        cut = min(over)
        buckets = query.buckets()
        start = query.window().start or bucket_bounds(buckets, min(r.bucket for r in rows))[0]
        return [r for r in rows if r.bucket < cut], PageRange(
            start, bucket_bounds(buckets, cut)[0], None
        )

    # --- provision (5.6.11 – 5.6.16) ------------------------------------------------------

    async def upsert(
        self, principal: Principal, tenant: str, entity: Entity, instances: provision.Instances
    ) -> Outcome:
        """Create or update a temporal entity: every instance is appended to history; the
        newest instance of each attribute (per datasetId) becomes its current value."""
        return await self._write(principal, tenant, entity.id, provision.upsert(entity, instances))

    async def append(
        self, principal: Principal, tenant: str, entity_id: str, instances: provision.Instances
    ) -> Outcome:
        """Add attribute instances to an existing temporal entity (404 when missing)."""
        mutation = provision.append(entity_id, instances)
        return await self._write(principal, tenant, entity_id, mutation)

    async def _write(self, principal: Principal, tenant: str, eid: str, m: Any) -> Outcome:
        self.access.require_write(principal, tenant)
        [result] = await self.storage.write([WriteOp(tenant, eid, m)])
        if isinstance(result, Exception):
            raise result
        return result

    async def delete_entity(self, principal: Principal, tenant: str, entity_id: str) -> None:
        """Delete the entity and its whole history (404 when neither exists)."""
        self.access.require_write(principal, tenant)
        existed = await self._write_quietly(tenant, entity_id, ops.delete_entity())
        removed = await self.storage.history_delete(tenant, entity_id)
        if not existed and not removed:
            raise ResourceNotFound(f"Temporal entity {entity_id} not found.")

    async def delete_attr(
        self,
        principal: Principal,
        tenant: str,
        entity_id: str,
        attr: str,
        *,
        dataset_id: str | None,
        delete_all: bool,
    ) -> None:
        """Delete an attribute (one datasetId, or all) from the entity and from history."""
        self.access.require_write(principal, tenant)
        mutation = ops.delete_attr(attr, dataset_id=dataset_id, delete_all=delete_all)
        existed = await self._write_quietly(tenant, entity_id, mutation)
        removed = await self.storage.history_delete(
            tenant, entity_id, attr, dataset_id=dataset_id, all_datasets=delete_all
        )
        if not existed and not removed:
            raise ResourceNotFound(f"Attribute {attr} of {entity_id} not found.")

    async def _write_quietly(self, tenant: str, entity_id: str, mutation: Any) -> bool:
        """Apply a mutation to the current state; False when it found nothing to change."""
        [result] = await self.storage.write([WriteOp(tenant, entity_id, mutation)])
        if isinstance(result, ResourceNotFound):
            return False
        if isinstance(result, Exception):
            raise result
        return True

    async def modify_instance(
        self,
        principal: Principal,
        tenant: str,
        entity_id: str,
        attr: str,
        hid: int,
        fragment: Instance,
        now: str,
    ) -> None:
        """Correct one stored instance (5.6.14): its members merged with ``fragment``."""
        self.access.require_write(principal, tenant)
        stored = await self.storage.history_get(tenant, entity_id, attr, hid)
        if stored is None:
            raise ResourceNotFound(f"Instance {hid} of {attr} of {entity_id} not found.")
        merged = merge_instance(stored.instance, fragment)
        if "datasetId" in fragment:
            merged["datasetId"] = fragment["datasetId"]
        merged["modifiedAt"] = now
        if not await self.storage.history_replace(tenant, entity_id, attr, hid, merged):
            raise ResourceNotFound(f"Instance {hid} of {attr} of {entity_id} not found.")

    async def delete_instance(
        self, principal: Principal, tenant: str, entity_id: str, attr: str, hid: int
    ) -> None:
        """Delete one stored instance (5.6.15)."""
        self.access.require_write(principal, tenant)
        if not await self.storage.history_delete_instance(tenant, entity_id, attr, hid):
            raise ResourceNotFound(f"Instance {hid} of {attr} of {entity_id} not found.")


def _oldest_first(rows: list[StoredInstance]) -> list[StoredInstance]:
    """Rows read newest first → oldest first within each pair, pair order kept."""
    groups: dict[tuple[str, str], list[StoredInstance]] = {}
    for row in rows:
        groups.setdefault((row.entity_id, row.attr), []).append(row)
    return [r for g in groups.values() for r in reversed(g)]
