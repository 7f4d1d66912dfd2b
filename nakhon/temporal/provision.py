"""Temporal provision as mutations (clauses 5.6.11 / 5.6.12).

A temporal payload gives, per attribute, a list of instances (usually each with its own
``observedAt``). As Stellio does, the temporal entity and the entity are one: upserting a
temporal entity creates the entity when missing, every instance goes to history (the writer
appends ``Outcome.changed`` to ``attr_history`` in the same transaction), and for each attribute
and datasetId the newest instance becomes the current value unless the current one is newer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nakhon.broker import validate
from nakhon.broker.model import SYSTEM_MEMBERS, Entity, Instance
from nakhon.core.errors import BadRequestData, ResourceNotFound
from nakhon.storage.base import Mutation, Outcome

Instances = dict[str, list[Instance]]
"""Expanded attribute IRI → the instances to add, in payload order."""

_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


def parse_temporal_attrs(body: dict[str, Any], expand: Any, skip: frozenset[str]) -> Instances:
    """Each attribute of a temporal payload: one instance object or an array of them.

    Instances are validated one by one, since several may share a datasetId (they differ in
    time). The simplified temporal forms (``values`` arrays) are not accepted for writes."""
    out: Instances = {}
    for name, value in body.items():
        if name in skip:
            continue
        items = value if isinstance(value, list) else [value]
        if not items:
            raise BadRequestData(f"Attribute {name!r} has no instances.")
        for item in items:
            if not isinstance(item, dict):
                raise BadRequestData(
                    f"Each instance of {name!r} must be an object (normalized temporal form)."
                )
            if any(k in item for k in ("values", "objects", "languageMaps", "vocabs")):
                raise BadRequestData(
                    f"Attribute {name!r}: write instances in the normalized temporal form, "
                    "not temporalValues."
                )
            body_item = {k: v for k, v in item.items() if k != "instanceId"}
            [inst] = validate.parse_attribute(name, body_item, expand)
            out.setdefault(expand(name), []).append(inst)
    return out


def parse_temporal_entity(body: Any, expand: Any) -> tuple[Entity, Instances]:
    """POST /temporal/entities: the entity (id, type, scope) and its instances."""
    if not isinstance(body, dict):
        raise BadRequestData("The body must be a temporal entity (a JSON object).")
    head = {k: v for k, v in body.items() if k in ("id", "@id", "type", "@type", "scope")}
    entity = validate.parse_entity(head, expand)
    skip = frozenset({"id", "@id", "type", "@type", "scope", "@context", "createdAt",
                      "modifiedAt"})
    return entity, parse_temporal_attrs(body, expand, skip)


def _time(inst: Instance) -> datetime:
    observed = inst.get("observedAt")
    if isinstance(observed, str):
        try:
            return datetime.fromisoformat(observed.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    # No observation time: it happens "now", later than any observation.
    return _FAR_FUTURE


def _apply(entity: Entity, instances: Instances, now: str) -> list[tuple[str, Instance]]:
    """Stamp every instance, append them all to ``changed``, move the current values."""
    changed: list[tuple[str, Instance]] = []
    for iri, items in instances.items():
        current = list(entity.attrs.get(iri, []))
        created_of = {i.get("datasetId"): i.get("createdAt") for i in current}
        newest: dict[str | None, Instance] = {}
        for inst in sorted(items, key=_time):
            ds = inst.get("datasetId")
            stamped = {k: v for k, v in inst.items() if k not in SYSTEM_MEMBERS}
            stamped["createdAt"] = created_of.get(ds) or now
            stamped["modifiedAt"] = now
            changed.append((iri, stamped))
            newest[ds] = stamped
        for ds, inst in newest.items():
            old = next((i for i in current if i.get("datasetId") == ds), None)
            if old is None:
                # Normal form: the default instance first.
                current.insert(0 if ds is None else len(current), inst)
            elif _time(inst) >= _time(old) or "observedAt" not in old:
                current[current.index(old)] = inst
        entity.attrs[iri] = current
    return changed


def upsert(new: Entity, instances: Instances) -> Mutation:
    """Create the temporal entity, or add to it (types grow, scope is replaced if given)."""

    def mutate(current: Entity | None, now: str) -> Outcome:
        created = current is None
        if current is None:
            entity = Entity(new.id, list(new.types), {}, new.scope, now, now)
        else:
            entity = current.copy()
            for t in new.types:
                if t not in entity.types:
                    entity.types.append(t)
            if new.scope is not None:
                entity.scope = list(new.scope)
        changed = _apply(entity, instances, now)
        entity.modified_at = now
        return Outcome(entity, created=created, changed=changed, previous=current)

    return mutate


def append(entity_id: str, instances: Instances) -> Mutation:
    """Add instances to an existing temporal entity."""

    def mutate(current: Entity | None, now: str) -> Outcome:
        if current is None:
            raise ResourceNotFound(f"Temporal entity {entity_id} not found.")
        entity = current.copy()
        changed = _apply(entity, instances, now)
        entity.modified_at = now
        return Outcome(entity, changed=changed, previous=current)

    return mutate
