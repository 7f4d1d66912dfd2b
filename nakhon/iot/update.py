"""The write of one measurement: Batch Upsert (update mode) of the device entity, fast.

A measurement is built by :mod:`nakhon.iot.convert`, so its shape is known: one default
instance (no ``datasetId``) per attribute, no system members, types already expanded. For the
case that is nearly every ingest write — the entity exists, already has the types, and each
measured attribute has (at most) its default instance — :func:`measurement_update` writes the
next state directly: a copy of the attribute dict, one stamped instance per measured attribute
(``createdAt`` kept, ``modifiedAt`` = now), nothing else touched. Anything else (a missing
entity, a new type, a multi-instance attribute, an NGSI-LD Null value from a device) goes through
the general :func:`nakhon.broker.ops.upsert_entity`, whose result it equals in the fast case
(``tests/iot/test_update.py`` holds it to that). The profile of the writer thread had the
general mutation (draft, datasetId matching, Null checks, UpdateResult) at a third of its time.
"""

from __future__ import annotations

from nakhon.broker import ops
from nakhon.broker.model import Entity, Instance
from nakhon.broker.ops_attrs import is_null
from nakhon.storage.base import Mutation, Outcome


def measurement_update(entity_id: str, types: list[str],
                       attrs: dict[str, list[Instance]]) -> Mutation:
    """``ops.upsert_entity(Entity(entity_id, types, attrs), mode="update")``, fast."""
    for instances in attrs.values():
        if len(instances) != 1 or "datasetId" in instances[0] or is_null(instances[0]):
            return _general(entity_id, types, attrs)
    if not attrs:
        return _general(entity_id, types, attrs)

    def general(current: Entity | None, now: str) -> Outcome:
        return _general(entity_id, types, attrs)(current, now)

    def mutate(current: Entity | None, now: str) -> Outcome:
        if current is None:
            return general(current, now)
        have = current.types
        for t in types:
            if t not in have:
                return general(current, now)
        old_attrs = current.attrs
        new_attrs = dict(old_attrs)
        changed: list[tuple[str, Instance]] = []
        for iri, (inst,) in attrs.items():
            old = old_attrs.get(iri)
            if not old:
                created = now
            elif len(old) == 1 and "datasetId" not in old[0]:
                created = old[0].get("createdAt") or now
            else:
                return general(current, now)  # other instances to keep in order
            stamped = dict(inst)
            stamped["createdAt"] = created
            stamped["modifiedAt"] = now
            new_attrs[iri] = [stamped]
            changed.append((iri, stamped))
        scope = current.scope
        entity = Entity(current.id, list(have), new_attrs,
                        list(scope) if scope is not None else None, current.created_at, now)
        return Outcome(entity, result={"updated": list(attrs), "notUpdated": []},
                       changed=changed, previous=current)

    return mutate


def _general(entity_id: str, types: list[str], attrs: dict[str, list[Instance]]) -> Mutation:
    return ops.upsert_entity(Entity(entity_id, types, attrs), mode="update")
