"""Entity ↔ row helpers shared by the storage engines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from nakhon.broker.model import Entity, Instance
from nakhon.storage.base import Outcome
from nakhon.storage.history_base import ENTITY_MARKER, null_instance


def numeric(inst: Instance) -> float | None:
    """The value when it is a JSON number (booleans are not), else None: the ``num`` column of
    a history row on both engines, written by the writer."""
    value = inst.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def utc_now() -> str:
    """The current time as NGSI-LD DateTime text (UTC, milliseconds, ``Z``)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def dump_doc(entity: Entity) -> bytes:
    """The JSON document stored for an entity."""
    return orjson.dumps({"attrs": entity.attrs})


def query_values(entity: Entity) -> str:
    """The scalar projection SQLite's q fast path reads (see ``query.q_sql.fast_term``).

    Every attribute IRI maps to its value when the attribute is a single Property instance
    whose value is a number or a string, else to null (the exact document walk decides)."""
    out: dict[str, Any] = {}
    for iri, instances in entity.attrs.items():
        value = None
        if len(instances) == 1 and instances[0].get("type") == "Property":
            candidate = instances[0].get("value")
            if isinstance(candidate, (int, float, str)) and not isinstance(candidate, bool):
                value = candidate
        out[iri] = value
    return orjson.dumps(out).decode()


def entity_from_row(
    entity_id: str,
    types: list[str],
    scopes: list[str] | None,
    created_at: str,
    modified_at: str,
    doc: dict[str, Any],
) -> Entity:
    """Rebuild an Entity from its stored columns."""
    return Entity(entity_id, types, doc.get("attrs", {}), scopes, created_at, modified_at)


def geo_values(entity: Entity | None) -> list[tuple[str, Any]]:
    """Every (attribute IRI, GeoJSON geometry) of an entity's GeoProperty instances."""
    if entity is None:
        return []
    found: list[tuple[str, Any]] = []
    for iri, instances in entity.attrs.items():
        for inst in instances:
            if inst.get("type") == "GeoProperty" and isinstance(inst.get("value"), dict):
                found.append((iri, inst["value"]))
    return found


def geo_unchanged(
    before: Entity | None,
    after: Entity | None,
    values: Callable[[Entity | None], list[tuple[str, Any]]] | None = None,
) -> bool:
    """``values(before) == values(after)`` (default :func:`geo_values`), cheaply in the common
    case.

    Mutations share the instance lists of attributes they do not write (see
    ``broker.ops_attrs.Draft``), so only attributes whose list is not the same object can
    differ; when none of those holds a GeoProperty on either side the geometry is unchanged
    without comparing (or even collecting) any coordinates. Otherwise: the full comparison.
    """
    get = values or geo_values
    if before is None or after is None:
        return get(before) == get(after)
    old, new = before.attrs, after.attrs
    # Plain loops: this runs for every write, a generator per attribute cost more than the rest.
    for iri, lst in new.items():
        prior = old.get(iri)
        if prior is lst:
            continue
        for inst in lst:
            if inst.get("type") == "GeoProperty":
                return get(before) == get(after)
        if prior is not None:
            for inst in prior:
                if inst.get("type") == "GeoProperty":
                    return get(before) == get(after)
    if not old.keys() <= new.keys():  # some attribute removed: was it a geometry?
        for iri, lst in old.items():
            if iri not in new:
                for inst in lst:
                    if inst.get("type") == "GeoProperty":
                        return get(before) == get(after)
    return True


def deletion_markers(outcome: Outcome, now: str) -> list[tuple[str, Instance]]:
    """The (attribute IRI, marker) pairs recording what ``outcome`` deleted (history_base).

    An instance is deleted when ``outcome.previous`` has its attribute and datasetId and the
    new state has not — whatever the operation (delete attribute, replace, merge with Null,
    delete entity). A deleted entity adds its entity marker. Cheap when nothing was removed:
    only the attributes listed in ``outcome.removed`` are compared."""
    previous = outcome.previous
    if previous is None:
        return []
    after = None if outcome.deleted else outcome.entity
    out: list[tuple[str, Instance]] = []
    names = list(previous.attrs) if outcome.deleted else outcome.removed
    for iri in names:
        kept = {i.get("datasetId") for i in after.attrs.get(iri, ())} if after else set()
        for inst in previous.attrs.get(iri, ()):
            ds = inst.get("datasetId")
            if ds not in kept:
                out.append((iri, null_instance(str(inst.get("type", "Property")), ds, now)))
    if outcome.deleted:
        mark: Instance = {"types": list(previous.types)}
        if previous.scope is not None:
            mark["scope"] = list(previous.scope)
        mark["createdAt"] = previous.created_at
        mark["deletedAt"] = now
        out.append((ENTITY_MARKER, mark))
    return out
