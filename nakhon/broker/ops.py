"""Entity operations as pure mutations (ETSI GS CIM 009 V1.8.1, clause 5.6).

Each function returns a :data:`~nakhon.storage.base.Mutation`: the storage engine calls it with
the entity's current state (``None`` when missing) and the transaction time, inside its write
transaction, and writes what the returned :class:`~nakhon.storage.base.Outcome` says. A mutation
raises an :class:`~nakhon.core.errors.NgsiError` to refuse (nothing is written) and never changes
``current`` or its own arguments; it may be applied more than once (e.g. on a retried group).

Rules shared by every operation
-------------------------------
* **System times (4.8).** ``entity.created_at`` is set on creation and never changes;
  ``entity.modified_at`` is ``now`` after any write. Each written top-level instance gets
  ``modifiedAt = now`` and keeps the ``createdAt`` of the instance it replaces (``now`` when
  new). Sub-attributes carry no system times: renderers need not strip them and they would
  double the work of every write for no query the API offers.
* **Multi-attributes (4.5.5).** An instance is identified by attribute IRI + ``datasetId``; no
  ``datasetId`` means the default instance. Operations only touch the instances they name.
* **NGSI-LD Null (4.5.x).** An instance whose value is ``"urn:ngsi-ld:null"`` (or the type's
  Null form, or JSON null in a merge patch) deletes the matching instance in operations that
  update existing content; in create/replace of a whole entity it is a BadRequestData.
* **Outcome.** ``changed``: each (attribute IRI, instance) written; ``removed``: IRIs of which
  at least one instance was deleted (the attribute may keep other instances — see ``entity``);
  ``previous``: the state before; ``unchanged``: nothing to write (then ``entity`` is
  ``current``); ``result``: UpdateResult ``{"updated": [...], "notUpdated": [...]}`` for the
  append/update family, ``None`` otherwise.

Append / Update / Partial Attribute Update live in :mod:`nakhon.broker.ops_attrs` (with the shared
machinery) and are re-exported here.
"""

from __future__ import annotations

from typing import Literal

from nakhon.broker.model import Entity, Instance
from nakhon.broker.ops_attrs import (
    NGSI_LD_NULL,
    Draft,
    append_attrs,
    apply_append,
    check_complete,
    is_null,
    merge_instance,
    partial_update_attr,
    reject_null,
    require,
    update_attrs,
    which,
)
from nakhon.core.errors import AlreadyExists, ResourceNotFound
from nakhon.storage.base import Mutation, Outcome

__all__ = [
    "NGSI_LD_NULL",
    "append_attrs",
    "batch_merge_entity",
    "batch_update_entity",
    "create_entity",
    "delete_attr",
    "delete_entity",
    "is_null",
    "merge_entity",
    "partial_update_attr",
    "replace_attr",
    "replace_entity",
    "update_attrs",
    "upsert_entity",
]


def _created(new: Entity, now: str) -> Outcome:
    """The Outcome of creating ``new`` (shared by create and upsert)."""
    reject_null(new.attrs, "Create entity")
    entity = Entity(new.id, list(new.types), {},
                    list(new.scope) if new.scope is not None else None, now, now)
    draft = Draft(entity, now)
    for iri, instances in new.attrs.items():
        for inst in instances:
            draft.put(iri, inst)
    return Outcome(draft.entity, created=True, changed=draft.changed)


def create_entity(new: Entity) -> Mutation:
    """POST /entities — Create Entity (5.6.1); also each item of Batch Create (5.6.7).

    AlreadyExists (409) when an entity with this id exists. Outcome ``created=True``.
    """

    def mutate(current: Entity | None, now: str) -> Outcome:
        if current is not None:
            raise AlreadyExists(f"Entity {new.id} already exists.")
        return _created(new, now)

    return mutate


def _replace(current: Entity, new: Entity, now: str) -> Outcome:
    reject_null(new.attrs, "Replace entity")
    draft = Draft(current, now)
    # The types are those of the new representation, not a union (5.6.18).
    if draft.entity.types != new.types:
        draft.entity.types = list(new.types)
        draft.meta_changed = True
    draft.set_scope(new.scope)
    for iri in list(draft.entity.attrs):
        keep = {inst.get("datasetId") for inst in new.attrs.get(iri, [])}
        for inst in list(draft.instances(iri)):
            if inst.get("datasetId") not in keep:
                draft.drop(iri, inst.get("datasetId"))
    for iri, instances in new.attrs.items():
        for inst in instances:
            draft.put(iri, inst)
    # A replace is a write even when the content is the same: modifiedAt moves.
    draft.meta_changed = True
    return draft.outcome()


def replace_entity(new: Entity) -> Mutation:
    """PUT /entities/{id} — Replace Entity (5.6.18).

    ResourceNotFound when missing. Types, scope and all attributes become those of ``new``;
    the entity's createdAt is kept, and so is each instance's createdAt where an instance with
    the same name + datasetId existed (as Replace Attribute, 5.6.19, does).
    """

    def mutate(current: Entity | None, now: str) -> Outcome:
        if current is None:
            raise ResourceNotFound(f"Entity {new.id} not found.")
        return _replace(current, new, now)

    return mutate


def _merge(current: Entity, patch: Entity, now: str, observed_at: str | None) -> Outcome:
    draft = Draft(current, now)
    draft.add_types(patch.types)
    if patch.scope is not None:
        # Scope merges like any member: given replaces, Null removes.
        draft.set_scope(None if patch.scope == [NGSI_LD_NULL] else patch.scope)
    for iri, instances in patch.attrs.items():
        for frag in instances:
            ds = frag.get("datasetId")
            existing = draft.find(iri, ds)
            if is_null(frag):
                # Deleting what is not there is a no-op in JSON Merge Patch (RFC 7396).
                draft.drop(iri, ds)
                continue
            merged = frag if existing is None else merge_instance(existing, frag, observed_at)
            check_complete(iri, merged)
            draft.put(iri, merged)
    return draft.outcome()


def merge_entity(patch: Entity, *, observed_at: str | None = None) -> Mutation:
    """PATCH /entities/{id} — Merge Entity (5.6.17), JSON Merge Patch rules (RFC 7396).

    ResourceNotFound when missing. For each instance of ``patch`` (matched by datasetId): NGSI-LD
    Null deletes it; a new one is added; an existing one is merged member-wise
    (:func:`~nakhon.broker.ops_attrs.merge_instance`: sub-attributes merge recursively, Null
    sub-attributes are removed, unmentioned members such as ``observedAt``/``unitCode`` stay).
    Types are added (4.16); a scope replaces the old one. ``observed_at`` is the operation's
    ``observedAt`` parameter. An empty patch is ``unchanged``.
    """

    def mutate(current: Entity | None, now: str) -> Outcome:
        if current is None:
            raise ResourceNotFound(f"Entity {patch.id} not found.")
        return _merge(current, patch, now, observed_at)

    return mutate


def delete_entity() -> Mutation:
    """DELETE /entities/{id} — Delete Entity (5.6.6); also Batch Delete (5.6.10) and Purge.

    ResourceNotFound when missing. Outcome ``deleted=True``, ``entity=None``, ``removed`` lists
    every attribute the entity had.
    """

    def mutate(current: Entity | None, now: str) -> Outcome:
        previous = require(current)
        return Outcome(None, deleted=True, removed=list(previous.attrs), previous=previous)

    return mutate


def upsert_entity(new: Entity, *, mode: Literal["replace", "update"]) -> Mutation:
    """One item of Batch Upsert (5.6.8).

    Missing: created (``created=True``, so the batch answers 201 with its id). Existing:
    ``replace`` — as Replace Entity (5.6.18); ``update`` — as Append Entity Attributes
    (5.6.3) with overwrite, types added, scope replaced; ``result`` is then its UpdateResult.
    """

    def mutate(current: Entity | None, now: str) -> Outcome:
        if current is None:
            return _created(new, now)
        if mode == "replace":
            return _replace(current, new, now)
        draft = Draft(current, now)
        result = apply_append(draft, new.attrs, no_overwrite=False, types=new.types,
                              scope=new.scope)
        return draft.outcome(result)

    return mutate


def batch_update_entity(new: Entity, *, no_overwrite: bool) -> Mutation:
    """One item of Batch Update (5.6.9): Append Entity Attributes (5.6.3) on an existing entity.

    ResourceNotFound when missing. ``result`` is the UpdateResult; whether a non-empty
    ``notUpdated`` (possible only with ``no_overwrite``) makes the item an error of the
    BatchOperationResult is for the API layer to decide.
    """
    return append_attrs(new.attrs, no_overwrite=no_overwrite, types=new.types, scope=new.scope)


def batch_merge_entity(patch: Entity) -> Mutation:
    """One item of Batch Merge (5.6.20): Merge Entity (5.6.17)."""
    return merge_entity(patch)


def replace_attr(attr: str, instances: list[Instance]) -> Mutation:
    """PUT /entities/{id}/attrs/{attrId} — Replace Attribute (5.6.19).

    Each given instance replaces the existing instance with the same datasetId, keeping its
    createdAt (the type may change); NGSI-LD Null deletes it. ResourceNotFound when the entity,
    the attribute or that instance does not exist.
    """

    def mutate(current: Entity | None, now: str) -> Outcome:
        draft = Draft(require(current), now)
        if attr not in draft.entity.attrs:
            raise ResourceNotFound(f"Attribute {attr} not found.")
        for inst in instances:
            ds = inst.get("datasetId")
            if draft.find(attr, ds) is None:
                raise ResourceNotFound(f"Attribute {attr} has no {which(ds)}.")
            if is_null(inst):
                draft.drop(attr, ds)
            else:
                draft.put(attr, inst)
        return draft.outcome()

    return mutate


def delete_attr(attr: str, *, dataset_id: str | None, delete_all: bool) -> Mutation:
    """DELETE /entities/{id}/attrs/{attrId} — Delete Entity Attribute (5.6.5).

    ``delete_all``: every instance; otherwise the instance with ``dataset_id`` (None: the
    default instance). ResourceNotFound when the entity or the instance does not exist.
    """

    def mutate(current: Entity | None, now: str) -> Outcome:
        draft = Draft(require(current), now)
        if attr not in draft.entity.attrs:
            raise ResourceNotFound(f"Attribute {attr} not found.")
        if delete_all:
            draft.drop_all(attr)
        elif not draft.drop(attr, dataset_id):
            raise ResourceNotFound(f"Attribute {attr} has no {which(dataset_id)}.")
        return draft.outcome()

    return mutate
