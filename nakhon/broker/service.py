"""The broker's use cases: one function per NGSI-LD operation, shared by every door.

The HTTP API, the web pages, the CLI and the ingest path all call these. Each checks
authorisation itself, works on the normal form (``broker.model``) and goes to storage only
through the :class:`~nakhon.storage.base.Storage` contract. Payload parsing and rendering happen
at the edge, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nakhon.broker import ops
from nakhon.broker.model import Entity, Instance
from nakhon.core.auth import Access, Principal
from nakhon.core.errors import (
    BadRequestData,
    NgsiError,
    NonexistentTenant,
    ResourceNotFound,
    TooManyResults,
)
from nakhon.storage.base import (
    AttributeInfo,
    EntityQuery,
    Mutation,
    Outcome,
    QueryPage,
    Storage,
    TypeInfo,
    WriteOp,
)

PURGE_PAGE = 1000


@dataclass(slots=True)
class BatchResult:
    """Per-entity answers of a batch operation, in request order."""

    results: list[tuple[str, Outcome | Exception]]

    @property
    def errors(self) -> list[tuple[str, Exception]]:
        return [(i, r) for i, r in self.results if isinstance(r, Exception)]

    @property
    def successes(self) -> list[tuple[str, Outcome]]:
        return [(i, r) for i, r in self.results if isinstance(r, Outcome)]


class Broker:
    """NGSI-LD use cases over one storage engine."""

    def __init__(self, storage: Storage, access: Access, *, max_limit: int) -> None:
        self.storage = storage
        self.access = access
        self.max_limit = max_limit

    # --- helpers -----------------------------------------------------------------------------

    async def _write_one(self, principal: Principal, tenant: str, eid: str, m: Mutation) -> Outcome:
        self.access.require_write(principal, tenant)
        [result] = await self.storage.write([WriteOp(tenant, eid, m)])
        if isinstance(result, Exception):
            raise result
        return result

    async def _readable(self, principal: Principal, tenant: str) -> None:
        await self.access.require_read(principal, tenant)
        if not await self.storage.tenant_exists(tenant):
            raise NonexistentTenant(f"Tenant {tenant!r} does not exist.")

    # --- entities ----------------------------------------------------------------------------

    async def create_entity(self, principal: Principal, tenant: str, entity: Entity) -> Outcome:
        return await self._write_one(principal, tenant, entity.id, ops.create_entity(entity))

    async def retrieve_entity(self, principal: Principal, tenant: str, entity_id: str) -> Entity:
        await self._readable(principal, tenant)
        entity = await self.storage.get(tenant, entity_id)
        if entity is None:
            raise ResourceNotFound(f"Entity {entity_id} not found.")
        return entity

    async def query_entities(
        self, principal: Principal, tenant: str, query: EntityQuery
    ) -> QueryPage:
        await self._readable(principal, tenant)
        if query.limit > self.max_limit:
            raise TooManyResults(
                f"limit {query.limit} is above the maximum of {self.max_limit}.",
                maxLimit=self.max_limit,
            )
        if query.limit < 0 or query.offset < 0:
            raise BadRequestData("limit and offset must not be negative.")
        return await self.storage.query(tenant, query)

    async def replace_entity(self, principal: Principal, tenant: str, entity: Entity) -> Outcome:
        return await self._write_one(principal, tenant, entity.id, ops.replace_entity(entity))

    async def merge_entity(self, principal: Principal, tenant: str, patch: Entity) -> Outcome:
        return await self._write_one(principal, tenant, patch.id, ops.merge_entity(patch))

    async def delete_entity(self, principal: Principal, tenant: str, entity_id: str) -> Outcome:
        return await self._write_one(principal, tenant, entity_id, ops.delete_entity())

    async def purge_entities(self, principal: Principal, tenant: str, query: EntityQuery) -> int:
        """Delete every entity the query selects (DELETE /entities); returns how many."""
        self.access.require_write(principal, tenant)
        if not await self.storage.tenant_exists(tenant):
            raise NonexistentTenant(f"Tenant {tenant!r} does not exist.")
        deleted = 0
        while True:
            query.limit, query.offset = PURGE_PAGE, 0
            page = await self.storage.query(tenant, query)
            if not page.entities:
                return deleted
            results = await self.storage.write(
                [WriteOp(tenant, e.id, ops.delete_entity()) for e in page.entities]
            )
            done = sum(1 for r in results if isinstance(r, Outcome))
            deleted += done
            if done == 0:
                return deleted

    # --- attributes --------------------------------------------------------------------------

    async def append_attrs(
        self,
        principal: Principal,
        tenant: str,
        entity_id: str,
        attrs: dict[str, list[Instance]],
        *,
        no_overwrite: bool,
        types: list[str] | None = None,
        scope: list[str] | None = None,
    ) -> Outcome:
        mutation = ops.append_attrs(attrs, no_overwrite=no_overwrite, types=types, scope=scope)
        return await self._write_one(principal, tenant, entity_id, mutation)

    async def update_attrs(
        self, principal: Principal, tenant: str, entity_id: str, attrs: dict[str, list[Instance]]
    ) -> Outcome:
        return await self._write_one(principal, tenant, entity_id, ops.update_attrs(attrs))

    async def partial_update_attr(
        self, principal: Principal, tenant: str, entity_id: str, attr: str, frag: list[Instance]
    ) -> Outcome:
        mutation = ops.partial_update_attr(attr, frag)
        return await self._write_one(principal, tenant, entity_id, mutation)

    async def replace_attr(
        self, principal: Principal, tenant: str, entity_id: str, attr: str, inst: list[Instance]
    ) -> Outcome:
        return await self._write_one(principal, tenant, entity_id, ops.replace_attr(attr, inst))

    async def delete_attr(
        self,
        principal: Principal,
        tenant: str,
        entity_id: str,
        attr: str,
        *,
        dataset_id: str | None,
        delete_all: bool,
    ) -> Outcome:
        mutation = ops.delete_attr(attr, dataset_id=dataset_id, delete_all=delete_all)
        return await self._write_one(principal, tenant, entity_id, mutation)

    # --- batch -------------------------------------------------------------------------------

    async def batch(
        self,
        principal: Principal,
        tenant: str,
        kind: Literal["create", "upsert", "update", "merge", "delete"],
        items: Sequence[Entity | str | NgsiError],
        *,
        upsert_mode: Literal["replace", "update"] = "replace",
        no_overwrite: bool = False,
    ) -> BatchResult:
        """Run a batch; ``items`` are parsed entities (ids for delete), or the parse error of an
        item, which is reported for that item while the others go ahead."""
        self.access.require_write(principal, tenant)
        writes: list[WriteOp] = []
        slots: list[tuple[str, Outcome | Exception | None]] = []
        for item in items:
            if isinstance(item, NgsiError):
                slots.append((str(item.extra.get("entityId", "")), item))
                continue
            eid = item if isinstance(item, str) else item.id
            writes.append(
                WriteOp(tenant, eid, _batch_mutation(kind, item, upsert_mode, no_overwrite))
            )
            slots.append((eid, None))
        answers = iter(await self.storage.write(writes))
        return BatchResult([(eid, r if r is not None else next(answers)) for eid, r in slots])

    # --- discovery ---------------------------------------------------------------------------

    async def list_types(self, principal: Principal, tenant: str) -> list[TypeInfo]:
        await self._readable(principal, tenant)
        return await self.storage.list_types(tenant)

    async def list_attributes(self, principal: Principal, tenant: str) -> list[AttributeInfo]:
        await self._readable(principal, tenant)
        return await self.storage.list_attributes(tenant)


def _batch_mutation(
    kind: str, item: Entity | str, upsert_mode: Literal["replace", "update"], no_overwrite: bool
) -> Mutation:
    if kind == "delete":
        return ops.delete_entity()
    assert isinstance(item, Entity)
    if kind == "create":
        return ops.create_entity(item)
    if kind == "upsert":
        return ops.upsert_entity(item, mode=upsert_mode)
    if kind == "update":
        return ops.batch_update_entity(item, no_overwrite=no_overwrite)
    return ops.batch_merge_entity(item)


def any_result(value: Any) -> bool:
    """True when a mutation's result says something was not done (for 207 answers)."""
    return bool(isinstance(value, dict) and value.get("notUpdated"))
