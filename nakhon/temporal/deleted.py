"""Deleted entities in the temporal API (ETSI GS CIM 009 V1.8.1, clause 4.8 ``deletedAt``).

An entity deleted through ``/entities`` leaves an *entity marker* in its history (see
``nakhon.storage.history_base``): its types, scope, ``createdAt`` and ``deletedAt``. The temporal
API reaches such an entity through it:

* retrieve (5.7.3): an entity that does not exist now is answered from its newest marker;
* query (5.7.4): deleted entities are selected by ``id``, ``idPattern``, ``type`` and ``attrs``
  — never by ``q``, ``scopeQ`` or a geo-query, which are about a current state they no longer
  have — and only when they have an instance (markers included) in the time window. They come
  after the existing entities of the page sequence, in id order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from nakhon.broker.model import Entity
from nakhon.broker.query.nodes import And, Or
from nakhon.broker.query.sql import regex_search
from nakhon.broker.query.typesel import TypeExpr, match_types
from nakhon.storage.base import EntityQuery, QueryPage
from nakhon.storage.history_base import DeletedEntity, DeletedQuery, HistoryStore, TimeWindow


@dataclass(slots=True)
class Page:
    """One page of existing and deleted entities (``deleted_at`` by id for the latter)."""

    entities: list[Entity]
    count: int | None
    deleted_at: dict[str, str]


def stub(item: DeletedEntity) -> Entity:
    """The entity as its marker keeps it: no attributes, ``modifiedAt`` = ``deletedAt``."""
    return Entity(item.id, list(item.types), {}, item.scope, item.created_at, item.deleted_at)


def type_names(expr: TypeExpr | None) -> list[str] | None:
    """Every type a type selection names (the storage prefilter), or None for no selection."""
    if expr is None:
        return None
    if isinstance(expr, And | Or):
        out: list[str] = []
        for item in expr.items:
            out.extend(type_names(item) or [])
        return sorted(set(out))
    return [str(expr)]


def eligible(selection: EntityQuery) -> bool:
    """Can deleted entities match? Not when the query is about the current state."""
    return selection.q is None and selection.geo is None and selection.scope_q is None


def matches(selection: EntityQuery, item: DeletedEntity) -> bool:
    if selection.id_pattern is not None and not regex_search(selection.id_pattern, item.id):
        return False
    return selection.type_expr is None or match_types(selection.type_expr, item.types)


async def find(store: HistoryStore, tenant: str, selection: EntityQuery,
               window: TimeWindow) -> list[DeletedEntity]:
    """The deleted entities a temporal query selects, in id order."""
    if not eligible(selection):
        return []
    found = await store.history_deleted(
        DeletedQuery(
            tenant,
            ids=list(selection.ids) if selection.ids is not None else None,
            types=type_names(selection.type_expr),
            window=window,
            attrs=list(selection.attrs) if selection.attrs else None,
        )
    )
    return [d for d in found if matches(selection, d)]


def merge(selection: EntityQuery, deleted: list[DeletedEntity], current: QueryPage,
          n_current: int) -> Page:
    """Existing entities first (the broker's page), then the deleted ones: one sequence, paged
    by ``offset``/``limit``; ``n_current`` is how many existing entities match."""
    room = selection.limit - len(current.entities)
    start = max(0, selection.offset - n_current)
    tail = deleted[start : start + room] if room > 0 else []
    return Page(
        current.entities + [stub(d) for d in tail],
        n_current + len(deleted) if selection.count else None,
        {d.id: d.deleted_at for d in tail},
    )


def known_total(selection: EntityQuery, current: QueryPage) -> int | None:
    """How many existing entities match, when the page tells: its count, or — a page that is
    not full ends the sequence — offset + its length. None when only a count query can tell
    (an empty page past the start)."""
    if current.count is not None:
        return current.count
    if len(current.entities) >= selection.limit:
        return None
    if current.entities or selection.offset == 0:
        return selection.offset + len(current.entities)
    return None


def counting(selection: EntityQuery) -> EntityQuery:
    """The selection with ``count`` on, to learn how many existing entities match."""
    return replace(selection, count=True)
