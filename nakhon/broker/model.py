"""The one internal normal form of an NGSI-LD entity.

Parse at the edge, keep one normal form inside (DESIGN.md rule 3). Every payload is validated and
its terms expanded once (``broker.validate``); everything after that — mutations, storage, query
evaluation, rendering — works on this form only.

Normal form
-----------
* ``Entity.id``: the entity URI, as given.
* ``Entity.types``: expanded type IRIs, in the order given, no duplicates.
* ``Entity.scope``: list of scope strings (``/a/b``) or ``None``.
* ``Entity.attrs``: ``{expanded attribute IRI: [Instance, ...]}``. Each list holds the attribute's
  instances; at most one has no ``datasetId`` (the default instance) and it comes first.
  ``location``, ``observationSpace`` and ``operationSpace`` are keyed by their core IRIs
  (``https://uri.etsi.org/ngsi-ld/location`` …).
* ``Entity.created_at`` / ``modified_at``: system times, ISO 8601 UTC with ``Z``.

An ``Instance`` is a plain dict in NGSI-LD *normalized* shape:

* ``"type"``: one of :data:`ATTRIBUTE_TYPES` (always present);
* exactly one value member by type (:data:`VALUE_MEMBER`): ``value`` (Property, GeoProperty —
  GeoJSON geometry), ``object`` (Relationship; str or list of str), ``languageMap`` (dict of
  lang → str or list of str), ``vocab`` (VocabProperty; expanded IRI or list of them),
  ``valueList`` (ListProperty), ``objectList`` (ListRelationship; list of ``{"object": uri}``),
  ``json`` (JsonProperty; any JSON, never expanded);
* optional meta members (:data:`META_MEMBERS`): ``datasetId``, ``observedAt``, ``unitCode``,
  ``objectType`` (expanded), ``createdAt``, ``modifiedAt`` (system, set by mutations);
* sub-attributes: any other key, an expanded IRI → one nested ``Instance`` (same shape).

Values inside ``value``/``valueList``/``json`` are user data and are kept byte-for-byte
(Thai text, quotes and brackets are data); only attribute names, types and vocab values are
IRIs that get expanded and compacted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Instance = dict[str, Any]

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
LOCATION = NGSI_LD + "location"
OBSERVATION_SPACE = NGSI_LD + "observationSpace"
OPERATION_SPACE = NGSI_LD + "operationSpace"
GEO_CORE_ATTRS = (LOCATION, OBSERVATION_SPACE, OPERATION_SPACE)

ATTRIBUTE_TYPES = (
    "Property",
    "Relationship",
    "GeoProperty",
    "LanguageProperty",
    "VocabProperty",
    "ListProperty",
    "ListRelationship",
    "JsonProperty",
)

VALUE_MEMBER: dict[str, str] = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
    "JsonProperty": "json",
}

META_MEMBERS = frozenset(
    {"type", "datasetId", "observedAt", "unitCode", "objectType", "createdAt", "modifiedAt",
     "instanceId", "value", "object", "languageMap", "vocab", "valueList", "objectList", "json"}
)
SYSTEM_MEMBERS = frozenset({"createdAt", "modifiedAt"})

# Member names an entity may carry at top level besides attributes.
ENTITY_RESERVED = frozenset({"id", "type", "scope", "createdAt", "modifiedAt", "@context"})


@dataclass(slots=True)
class Entity:
    """An entity in normal form (see the module docstring)."""

    id: str
    types: list[str]
    attrs: dict[str, list[Instance]] = field(default_factory=dict)
    scope: list[str] | None = None
    created_at: str = ""
    modified_at: str = ""

    def doc(self) -> dict[str, Any]:
        """The JSON document storage keeps for this entity (attributes only)."""
        return {"attrs": self.attrs}

    def copy(self) -> Entity:
        """A deep copy, so a mutation never changes the caller's object."""
        import copy

        return Entity(
            self.id,
            list(self.types),
            copy.deepcopy(self.attrs),
            list(self.scope) if self.scope is not None else None,
            self.created_at,
            self.modified_at,
        )


def sub_attributes(instance: Instance) -> dict[str, Instance]:
    """The sub-attributes of one instance (every key that is not a member name)."""
    return {k: v for k, v in instance.items() if k not in META_MEMBERS}


def default_instance(instances: list[Instance]) -> Instance | None:
    """The instance without ``datasetId``, if there is one."""
    for inst in instances:
        if "datasetId" not in inst:
            return inst
    return None
