"""Bulk history: append time-ordered attribute instances in one mutation per entity.

The general temporal provision (:mod:`nakhon.temporal.provision`) accepts instances in any
order, with any datasetId, and sorts, validates and copies them. Backfills (the demo city, a
migration from another platform, a benchmark) hand over fresh default instances already in time
order; for them :func:`append_in_order` does the same job without that per-instance work —
about three times cheaper in the writer — and is **idempotent**: only instances newer than the
newest ``observedAt`` the entity already has are written, checked inside the write transaction,
so an interrupted or repeated backfill never writes an instant twice.

Times are compared as instants, not as text: ``…T10:00:00Z``, ``…T10:00:00.000Z`` and
``…T17:00:00+07:00`` are the same instant. In the common case (a backfill continuing after what
is stored) one parse per attribute decides: the oldest instance is already newer than the cut,
so — the list being in time order — all are.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import repeat

from nakhon.broker.model import Entity, Instance
from nakhon.storage.base import Mutation, Outcome

Instances = dict[str, list[Instance]]
"""Attribute IRI → default instances in time order (each with ``observedAt``)."""


def _iso_utc(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _instant(raw: object) -> datetime | None:
    """An ``observedAt`` as an aware UTC datetime (naive text is read as UTC); None if absent
    or unreadable."""
    if not isinstance(raw, str):
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _newest(entity: Entity | None, attrs: Iterable[str]) -> datetime | None:
    if entity is None:
        return None
    newest: datetime | None = None
    for iri in attrs:
        for inst in entity.attrs.get(iri, ()):
            at = _instant(inst.get("observedAt"))
            if at is not None and (newest is None or at > newest):
                newest = at
    return newest


def latest_observed(entity: Entity | None, attrs: Iterable[str]) -> str | None:
    """The newest ``observedAt`` among ``attrs`` of ``entity``, normalised to storage's form."""
    newest = _newest(entity, attrs)
    return _iso_utc(newest) if newest is not None else None


def _after(items: list[Instance], cut: datetime | None) -> list[Instance]:
    """The instances observed after ``cut`` (all when there is no cut)."""
    if cut is None or not items:
        return items
    first = _instant(items[0].get("observedAt"))
    if first is not None and first > cut:
        return items  # in time order: the oldest is newer, so all are
    kept = []
    for inst in items:
        at = _instant(inst.get("observedAt"))
        if at is not None and at > cut:
            kept.append(inst)
    return kept


def append_in_order(entity_id: str, types: list[str], instances: Instances) -> Mutation:
    """Append to history only the instances newer than what the entity already has (see the
    module docstring); the newest of each attribute becomes its current value. The entity is
    recreated if someone deleted it meanwhile.

    The semantics of the temporal service's append (``temporal.provision``) for the one case
    the demo has — default instances (no datasetId), already in time order, freshly built —
    without its per-instance sorting, parsing and copying, which cost a third of the
    writer's time here. Other datasetIds of an attribute are kept as they are."""

    def mutate(current: Entity | None, now: str) -> Outcome:
        cut = _newest(current, instances)
        if current is None:
            entity = Entity(entity_id, list(types), {}, None, now, now)
        else:
            # Shallow: attribute lists are replaced, never changed in place.
            entity = Entity(
                current.id,
                list(current.types),
                dict(current.attrs),
                current.scope,
                current.created_at,
                current.modified_at,
            )
        changed: list[tuple[str, Instance]] = []
        for iri, items in instances.items():
            kept = _after(items, cut)
            if not kept:
                continue
            old = entity.attrs.get(iri) or []
            default = next((i for i in old if i.get("datasetId") is None), None)
            created = (default or {}).get("createdAt") or now
            for inst in kept:
                inst["createdAt"] = created
                inst["modifiedAt"] = now
            changed.extend(zip(repeat(iri), kept, strict=False))
            entity.attrs[iri] = [kept[-1], *(i for i in old if i.get("datasetId") is not None)]
        if not changed:
            return Outcome(current, unchanged=True)
        entity.modified_at = now
        return Outcome(entity, created=current is None, changed=changed, previous=current)

    return mutate
