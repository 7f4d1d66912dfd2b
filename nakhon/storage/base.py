"""The storage contract the service layer owns; SQLite and PostgreSQL implement it.

Writes are *mutations*: pure functions from the entity's current state to its next state,
applied by the engine inside its write transaction. The engine groups the operations of many
concurrent requests into one transaction (group commit), reads the current state of every entity
the batch touches in one query, applies each mutation in order (a later operation on the same
entity sees the earlier one's result), writes all changes with executemany, commits, and only
then answers each caller. A mutation that raises :class:`~nakhon.core.errors.NgsiError` changes
nothing and its caller gets the error; the other operations of the group are not affected.

Because the mutation sees the state *inside* the transaction there are no lost updates, and the
outcome carries what changed, so temporal history and the notification outbox can be appended in
the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nakhon.broker.model import Entity, Instance


@dataclass(slots=True)
class Outcome:
    """What one mutation did.

    ``entity`` is the new state (``None`` when ``deleted``). ``created`` tells a create from an
    update. ``result`` is an operation-specific answer for the caller (e.g. the
    ``notUpdated`` list of a partial append). ``changed`` lists the (attribute IRI, instance)
    pairs written, for temporal history; ``removed`` the attribute IRIs deleted.
    ``unchanged`` means nothing is to be written.
    """

    entity: Entity | None
    created: bool = False
    deleted: bool = False
    unchanged: bool = False
    result: Any = None
    changed: list[tuple[str, Instance]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    previous: Entity | None = None


Mutation = Callable[[Entity | None, str], Outcome]
"""``mutation(current, now)``: ``current`` is ``None`` when the entity does not exist; ``now``
is the transaction's timestamp (ISO 8601 UTC). Returns an :class:`Outcome` or raises NgsiError."""


@dataclass(slots=True)
class WriteOp:
    """One mutation of one entity of one tenant."""

    tenant: str
    entity_id: str
    mutate: Mutation


@dataclass(slots=True)
class EntityQuery:
    """A query over the entities of one tenant, already parsed.

    ``type_expr``, ``q`` and ``scope_q`` are ASTs from ``nakhon.broker.query``; ``geo`` a
    ``GeoQuery``; ``attrs`` (expanded IRIs) keeps entities having at least one of them.
    Results are ordered by ``(id)`` so paging is stable.
    """

    ids: Sequence[str] | None = None
    id_pattern: str | None = None
    type_expr: Any = None
    attrs: Sequence[str] | None = None
    q: Any = None
    geo: Any = None
    scope_q: Any = None
    limit: int = 20
    offset: int = 0
    count: bool = False


@dataclass(slots=True)
class QueryPage:
    entities: list[Entity]
    count: int | None = None


@dataclass(slots=True)
class TypeInfo:
    type: str
    attributes: list[str]
    count: int


@dataclass(slots=True)
class AttributeInfo:
    name: str
    types: list[str]
    attribute_types: list[str]
    count: int


class Storage(Protocol):
    """One storage engine. All methods are coroutines safe to call concurrently."""

    async def open(self) -> None:
        """Connect, create or migrate the schema, start the writer."""

    async def close(self) -> None:
        """Drain the writer and close connections."""

    async def write(self, ops: Sequence[WriteOp]) -> list[Outcome | Exception]:
        """Apply ``ops`` in one transaction (possibly grouped with other callers' ops).

        Returns one entry per op: its Outcome, or the NgsiError it raised (nothing written).
        Writing to a tenant creates the tenant."""

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        """One entity by id, or None."""

    async def query(self, tenant: str, query: EntityQuery) -> QueryPage:
        """Entities matching ``query``, ordered by id, paged; count if asked."""

    async def tenant_exists(self, tenant: str) -> bool:
        """Has anything ever been written to ``tenant``? (The default tenant always exists.)"""

    async def list_types(self, tenant: str) -> list[TypeInfo]:
        """Entity types in use, with their attributes and entity counts."""

    async def list_attributes(self, tenant: str) -> list[AttributeInfo]:
        """Attributes in use, with the entity types having them and their attribute types."""

    async def kv_get(self, namespace: str, key: str) -> Any | None:
        """A small JSON document (contexts, credentials, settings) or None."""

    async def kv_put(self, namespace: str, key: str, value: Any) -> None:
        """Store a small JSON document."""

    async def kv_delete(self, namespace: str, key: str) -> bool:
        """Delete a document; False when there was none."""

    async def kv_list(self, namespace: str) -> dict[str, Any]:
        """All documents of a namespace."""

    async def kv_put_many(
        self, namespace: str, items: Sequence[tuple[str, Any]], *, keep: int | None = None
    ) -> int:
        """Store several documents in ONE transaction; with ``keep``, then delete all but the
        ``keep`` documents with the greatest keys (a bounded log whose keys sort by age: make
        them fixed-width digits, so every collation orders them alike). Returns how many
        documents were deleted."""

    async def kv_page(
        self,
        namespace: str,
        *,
        limit: int,
        offset: int = 0,
        descending: bool = False,
        field: str | None = None,
        values: Collection[str] | None = None,
    ) -> list[tuple[str, Any]]:
        """(key, document) pairs of a namespace ordered by key, paged; with ``field`` and
        ``values`` only documents (JSON objects) whose top-level string ``field`` is one of
        ``values``. ``field`` is a plain identifier."""


DEFAULT_TENANT = ""
