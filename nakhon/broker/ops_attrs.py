"""The machinery of every mutation, and the fragment-based attribute operations.

Here: NGSI-LD Null detection, member-wise merge, the copy-on-write :class:`Draft`, UpdateResult
helpers, and Append / Update / Partial Attribute Update. :mod:`nakhon.broker.ops` has the rest
and the rules shared by all of them (system times, datasetId matching, NGSI-LD Null); the
service layer imports everything from ``ops``; this split only keeps each file readable.

Clauses cited are ETSI GS CIM 009 V1.8.1.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nakhon.broker.model import (
    META_MEMBERS,
    NGSI_LD,
    SYSTEM_MEMBERS,
    VALUE_MEMBER,
    Entity,
    Instance,
)
from nakhon.core.errors import BadRequestData, ResourceNotFound
from nakhon.storage.base import Mutation, Outcome

NGSI_LD_NULL = "urn:ngsi-ld:null"
"""NGSI-LD Null (clause 4.5.x): as an attribute's value it means "delete this instance"."""

SCOPE = NGSI_LD + "scope"
"""Name under which a refused scope change is reported in ``notUpdated`` (compacts to "scope")."""

_VALUE_MEMBERS = tuple(dict.fromkeys(VALUE_MEMBER.values()))
# Values that can never be NGSI-LD Null: checked by exact type, before any comparison.
_NEVER_NULL = frozenset({int, float, bool})


# --- NGSI-LD Null ---------------------------------------------------------------------------


def _null_value(member: str, value: Any) -> bool:
    if value is None or value == NGSI_LD_NULL:
        return True
    if member == "languageMap" and isinstance(value, dict):
        # {"@none": "urn:ngsi-ld:null"} is the LanguageProperty form of Null (4.5.18 / 4.5.x).
        return value.get("@none") == NGSI_LD_NULL
    if isinstance(value, list) and len(value) == 1:
        # JSON-LD makes ["x"] and "x" the same; ListRelationship wraps it as {"object": x}.
        item = value[0]
        if isinstance(item, dict):
            item = item.get("object")
        return bool(item == NGSI_LD_NULL)
    return False


def is_null(instance: Any) -> bool:
    """Is this attribute instance (or sub-attribute) NGSI-LD Null, i.e. a deletion request?

    JSON ``null`` counts too: it is how JSON Merge Patch (RFC 7396, used by 5.6.17) deletes.
    """
    if instance is None:
        return True
    if not isinstance(instance, dict):
        return False
    # Hot path of every write (each instance of each operation): a plain loop with the common
    # cases (numbers, ordinary strings) decided inline; _null_value only for containers.
    for member in _VALUE_MEMBERS:
        if member in instance:
            value = instance[member]
            kind = type(value)
            if kind in _NEVER_NULL:
                continue
            if kind is str:
                if value == NGSI_LD_NULL:
                    return True
                continue
            if _null_value(member, value):
                return True
    return False


def reject_null(attrs: dict[str, list[Instance]], operation: str) -> None:
    """Operations that write a whole entity have nothing to delete: Null there is a mistake."""
    for iri, instances in attrs.items():
        if any(is_null(inst) for inst in instances):
            raise BadRequestData(f"{operation}: attribute {iri} is NGSI-LD Null; "
                                 "Null only deletes in update operations.")


def check_complete(iri: str, instance: Instance) -> None:
    """The instance has a known type and that type's value member (after a merge)."""
    member = VALUE_MEMBER.get(instance.get("type", ""))
    if member is None or member not in instance:
        raise BadRequestData(f"Attribute {iri} has no type or no value after the update.")


def merge_instance(existing: Instance, frag: Instance, observed_at: str | None = None) -> Instance:
    """``existing`` with ``frag``'s members merged in (RFC 7396 style), as a new dict.

    Members given replace the old ones; sub-attributes merge recursively; a Null sub-attribute
    (or a Null ``unitCode``/``observedAt``…) removes it. A new ``type`` drops the old type's
    value member so a Relationship turned Property keeps no stale ``object``. ``observed_at``
    is Merge Entity's ``observedAt`` parameter (6.5.3.4): it refreshes an existing
    ``observedAt`` the fragment does not set. System members are left to the caller.
    """
    out = dict(existing)
    new_type = frag.get("type")
    if new_type is not None and new_type != existing.get("type"):
        old_member = VALUE_MEMBER.get(existing.get("type", ""))
        if old_member is not None and old_member != VALUE_MEMBER.get(new_type):
            out.pop(old_member, None)
        out["type"] = new_type
    for key, value in frag.items():
        if key in ("type", "datasetId") or key in SYSTEM_MEMBERS:
            continue
        if key in META_MEMBERS:
            if value is None or value == NGSI_LD_NULL:
                out.pop(key, None)
            else:
                out[key] = value
        elif is_null(value):
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_instance(out[key], value)
        else:
            out[key] = value
    if observed_at and "observedAt" in existing and "observedAt" not in frag:
        out["observedAt"] = observed_at
    return out


# --- copy-on-write working state ------------------------------------------------------------


class Draft:
    """The next state of one entity, built without touching ``current``.

    Structural sharing: the draft gets its own ``Entity``, ``attrs`` dict and ``types``/
    ``scope`` lists at once, and its own copy of an attribute's instance list only when that
    attribute is written. Untouched instance dicts are shared with ``current`` — safe because no
    code in the broker mutates an instance in place (each write puts a new dict). A deep copy per
    write would cost more than the rest of the hot ingest path.
    """

    def __init__(self, current: Entity, now: str) -> None:
        self.current = current
        self.now = now
        self.entity = Entity(
            current.id,
            list(current.types),
            dict(current.attrs),
            list(current.scope) if current.scope is not None else None,
            current.created_at,
            current.modified_at,
        )
        self.changed: list[tuple[str, Instance]] = []
        self.removed: list[str] = []
        self.meta_changed = False
        self._owned: set[str] = set()

    # instance lookup ---------------------------------------------------------------------

    def instances(self, iri: str) -> list[Instance]:
        return self.entity.attrs.get(iri, [])

    def find(self, iri: str, dataset_id: str | None) -> Instance | None:
        """The instance of ``iri`` with this datasetId (None: the default instance), 4.5.5."""
        for inst in self.instances(iri):
            if inst.get("datasetId") == dataset_id:
                return inst
        return None

    def _own(self, iri: str) -> list[Instance]:
        if iri not in self._owned:
            self.entity.attrs[iri] = list(self.entity.attrs.get(iri, []))
            self._owned.add(iri)
        return self.entity.attrs[iri]

    # writes -------------------------------------------------------------------------------

    def put(self, iri: str, instance: Instance) -> Instance:
        """Write one instance (insert, or replace the one with the same datasetId).

        createdAt is kept from the replaced instance, now for a new one; modifiedAt is now
        (4.8). Client-sent system members are ignored.
        """
        lst = self._own(iri)
        dataset_id = instance.get("datasetId")
        if "createdAt" in instance or "modifiedAt" in instance:
            stamped = {k: v for k, v in instance.items() if k not in SYSTEM_MEMBERS}
        else:  # the usual case: a plain copy is several times cheaper than the filter
            stamped = dict(instance)
        for i, old in enumerate(lst):
            if old.get("datasetId") == dataset_id:
                stamped["createdAt"] = old.get("createdAt") or self.now
                stamped["modifiedAt"] = self.now
                lst[i] = stamped
                break
        else:
            stamped["createdAt"] = self.now
            stamped["modifiedAt"] = self.now
            # Normal form: the default instance (no datasetId) comes first.
            if dataset_id is None:
                lst.insert(0, stamped)
            else:
                lst.append(stamped)
        self.changed.append((iri, stamped))
        return stamped

    def drop(self, iri: str, dataset_id: str | None) -> bool:
        """Delete one instance; False when there is none."""
        if self.find(iri, dataset_id) is None:
            return False
        lst = [i for i in self._own(iri) if i.get("datasetId") != dataset_id]
        self._set_list(iri, lst)
        self.removed.append(iri)
        return True

    def drop_all(self, iri: str) -> bool:
        if iri not in self.entity.attrs:
            return False
        self._set_list(iri, [])
        self.removed.append(iri)
        return True

    def _set_list(self, iri: str, lst: list[Instance]) -> None:
        if lst:
            self.entity.attrs[iri] = lst
            self._owned.add(iri)
        else:
            self.entity.attrs.pop(iri, None)
            self._owned.discard(iri)

    def add_types(self, types: Iterable[str] | None) -> None:
        """Types are a set that append/update/merge only grow (4.16)."""
        for t in types or ():
            if t not in self.entity.types:
                self.entity.types.append(t)
                self.meta_changed = True

    def set_scope(self, scope: list[str] | None) -> None:
        if scope != self.entity.scope:
            self.entity.scope = list(scope) if scope is not None else None
            self.meta_changed = True

    def outcome(self, result: Any = None) -> Outcome:
        """The Outcome: ``unchanged`` (and ``entity`` = current) when nothing was written."""
        if not (self.changed or self.removed or self.meta_changed):
            return Outcome(self.current, unchanged=True, result=result, previous=self.current)
        self.entity.modified_at = self.now
        return Outcome(
            self.entity,
            result=result,
            changed=self.changed,
            removed=list(dict.fromkeys(self.removed)),
            previous=self.current,
        )


def require(current: Entity | None) -> Entity:
    if current is None:
        raise ResourceNotFound("Entity not found.")
    return current


def update_result(updated: list[str], not_updated: list[dict[str, str]]) -> dict[str, Any]:
    """UpdateResult (5.2.18): attribute IRIs updated (each once) and NotUpdatedDetails."""
    return {"updated": list(dict.fromkeys(updated)), "notUpdated": not_updated}


def _not_updated(iri: str, reason: str) -> dict[str, str]:
    """NotUpdatedDetails (5.2.19)."""
    return {"attributeName": iri, "reason": reason}


def which(dataset_id: str | None) -> str:
    return f"datasetId {dataset_id}" if dataset_id is not None else "the default instance"


# --- attribute operations -------------------------------------------------------------------


def apply_append(draft: Draft, attrs: dict[str, list[Instance]], *, no_overwrite: bool,
                 types: list[str] | None, scope: list[str] | None) -> dict[str, Any]:
    """Append Entity Attributes (5.6.3) on a draft; returns the UpdateResult."""
    updated: list[str] = []
    not_updated: list[dict[str, str]] = []
    draft.add_types(types)
    if scope is not None:
        # 4.18: noOverwrite adds the scopes, otherwise the scope is replaced.
        if no_overwrite:
            merged = list(draft.entity.scope or [])
            merged += [s for s in scope if s not in merged]
            draft.set_scope(merged)
        else:
            draft.set_scope(scope)
    for iri, instances in attrs.items():
        for inst in instances:
            ds = inst.get("datasetId")
            exists = draft.find(iri, ds) is not None
            if exists and no_overwrite:
                not_updated.append(_not_updated(iri, f"{which(ds)} exists and noOverwrite"))
            elif is_null(inst):
                # Null deletes, as in every operation that may overwrite (4.5.x).
                if draft.drop(iri, ds):
                    updated.append(iri)
                else:
                    not_updated.append(_not_updated(iri, f"NGSI-LD Null but no {which(ds)}"))
            else:
                draft.put(iri, inst)
                updated.append(iri)
    return update_result(updated, not_updated)


def append_attrs(attrs: dict[str, list[Instance]], *, no_overwrite: bool,
                 types: list[str] | None = None, scope: list[str] | None = None) -> Mutation:
    """POST /entities/{id}/attrs — Append Entity Attributes (5.6.3).

    New attributes/instances (matched by name + datasetId, 4.5.5) are added; existing ones are
    replaced (createdAt kept) unless ``no_overwrite``, when they are reported in ``notUpdated``.
    Types are added; scope is added to (noOverwrite) or replaced. ``result`` is UpdateResult.
    """

    def mutate(current: Entity | None, now: str) -> Outcome:
        draft = Draft(require(current), now)
        result = apply_append(draft, attrs, no_overwrite=no_overwrite, types=types, scope=scope)
        return draft.outcome(result)

    return mutate


def update_attrs(attrs: dict[str, list[Instance]], *, types: list[str] | None = None,
                 scope: list[str] | None = None) -> Mutation:
    """PATCH /entities/{id}/attrs — Update Entity Attributes (5.6.2).

    Only instances that exist (name + datasetId) are replaced (createdAt kept) or, when NGSI-LD
    Null, deleted; the rest go to ``notUpdated``. Types are added (4.16); a scope replaces an
    existing scope but is not added to an entity without one (reported as ``notUpdated``).
    """

    def mutate(current: Entity | None, now: str) -> Outcome:
        draft = Draft(require(current), now)
        updated: list[str] = []
        not_updated: list[dict[str, str]] = []
        draft.add_types(types)
        if scope is not None:
            if draft.entity.scope is not None:
                draft.set_scope(scope)
                updated.append(SCOPE)
            else:
                not_updated.append(_not_updated(SCOPE, "the entity has no scope to update"))
        for iri, instances in attrs.items():
            for inst in instances:
                ds = inst.get("datasetId")
                if draft.find(iri, ds) is None:
                    not_updated.append(_not_updated(iri, f"no {which(ds)} to update"))
                    continue
                if is_null(inst):
                    draft.drop(iri, ds)
                else:
                    draft.put(iri, inst)
                updated.append(iri)
        return draft.outcome(update_result(updated, not_updated))

    return mutate


def partial_update_attr(attr: str, fragment: list[Instance]) -> Mutation:
    """PATCH /entities/{id}/attrs/{attrId} — Partial Attribute Update (5.6.4).

    Each fragment instance selects an existing instance by datasetId (none: the default one) and
    its members are merged in (sub-attributes member-wise; Null sub-attributes removed; a new
    ``type`` is allowed). A Null value deletes the instance. ResourceNotFound when the entity,
    the attribute or the selected instance does not exist.
    """

    def mutate(current: Entity | None, now: str) -> Outcome:
        draft = Draft(require(current), now)
        if attr not in draft.entity.attrs:
            raise ResourceNotFound(f"Attribute {attr} not found.")
        for frag in fragment:
            ds = frag.get("datasetId")
            existing = draft.find(attr, ds)
            if existing is None:
                raise ResourceNotFound(f"Attribute {attr} has no {which(ds)}.")
            if is_null(frag):
                draft.drop(attr, ds)
                continue
            merged = merge_instance(existing, frag)
            check_complete(attr, merged)
            draft.put(attr, merged)
        return draft.outcome()

    return mutate
