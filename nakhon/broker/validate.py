"""Client payloads → the entity normal form (``broker.model``), with precise errors.

Accepts the *normalized* and the *concise* representation (ETSI GS CIM 009 V1.8.1, 4.5.2/4.5.3):
an attribute without ``"type"`` gets its type from its value member (``object`` → Relationship,
``languageMap`` → LanguageProperty, ``vocab`` → VocabProperty, ``valueList`` → ListProperty,
``objectList`` → ListRelationship, ``json`` → JsonProperty, ``value`` → Property, or GeoProperty
when the value is a GeoJSON geometry or the attribute is ``location``/``observationSpace``/
``operationSpace``); a bare value (no NGSI-LD member) is a Property holding it, or a GeoProperty
when it is a GeoJSON geometry.

The caller has already decoded the JSON and resolved the ``@context`` into ``expand`` (compact
name → IRI). Every client mistake raises :class:`BadRequestData` and nothing is half-built.
User values are never rewritten: only names, types, vocab values and ``objectType`` are expanded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from nakhon.broker import model
from nakhon.broker.geojson import looks_like_geometry as looks_like_geometry
from nakhon.broker.geojson import short as _short
from nakhon.broker.geojson import validate_geometry as validate_geometry
from nakhon.broker.model import ATTRIBUTE_TYPES, GEO_CORE_ATTRS, VALUE_MEMBER, Entity, Instance
from nakhon.core.errors import BadRequestData

Expand = Callable[[str], str]

VALUE_MEMBERS = frozenset(VALUE_MEMBER.values())
# Members the client may send on an instance besides its value member; system members are dropped.
_CLIENT_META = ("datasetId", "observedAt", "unitCode", "objectType")
_IGNORED_MEMBERS = frozenset({"createdAt", "modifiedAt", "deletedAt", "instanceId"})
_ENTITY_MEMBERS = frozenset({"id", "@id", "type", "@type", "scope", "@context",
                             "createdAt", "modifiedAt", "deletedAt"})

# RFC 3986 scheme, then anything but whitespace/controls and the characters IRIs exclude.
_URI_RE = re.compile(r'^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>"{}|\\^`\x00-\x1f\x7f]+$')
# Clause 4.6.2: names must survive JSON-LD expansion and the query languages, so no whitespace,
# controls or the characters q/scopeQ and IRIs reserve.
_BAD_NAME_RE = re.compile(r"[\s<>\"'=;(){}|\\^`\x00-\x1f\x7f]")
_DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$")
_LANG_TAG_RE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
_SCOPE_RE = re.compile(r"^(/[^/\s#+\x00-\x1f]+)+$")


def parse_entity(body: Any, expand: Expand, *, require_id: bool = True,
                 require_type: bool = True) -> Entity:
    """Validate a whole entity payload and return it in normal form.

    ``createdAt``/``modifiedAt`` in the payload are ignored (system attributes) and ``@context``
    is the caller's business. Raises :class:`BadRequestData` on any invalid content.
    """
    if not isinstance(body, dict):
        raise BadRequestData("an entity must be a JSON object")
    for alias in (("id", "@id"), ("type", "@type")):
        if all(k in body for k in alias):
            raise BadRequestData(f"both '{alias[0]}' and '{alias[1]}' given")
    eid = body.get("id", body.get("@id"))
    if eid is None:
        if require_id:
            raise BadRequestData("entity 'id' is required")
        eid = ""
    else:
        check_uri(eid, "entity id")
    raw_type = body.get("type", body.get("@type"))
    types: list[str] = []
    if raw_type is None:
        if require_type:
            raise BadRequestData("entity 'type' is required")
    else:
        types = parse_types(raw_type, expand)
    scope = parse_scope(body["scope"]) if "scope" in body else None
    attrs = _parse_attr_map(body, expand, skip=_ENTITY_MEMBERS)
    return Entity(id=eid, types=types, attrs=attrs, scope=scope)


def parse_attributes(body: Any, expand: Expand) -> dict[str, list[Instance]]:
    """Validate a fragment of attributes (append/update/merge bodies): ``{expanded name: [...]}``.

    Entity members (``id``, ``type``, ``scope``, ``@context``, system times) are not attributes:
    they are skipped here and left to the caller (e.g. append may add entity types).
    """
    if not isinstance(body, dict):
        raise BadRequestData("an attribute fragment must be a JSON object")
    return _parse_attr_map(body, expand, skip=_ENTITY_MEMBERS)


def parse_attribute(name: str, body: Any, expand: Expand) -> list[Instance]:
    """Validate one attribute's value: one instance, or a list of instances (multi-attribute).

    Returns the instances with the default instance (no ``datasetId``) first.
    """
    check_name(name, "attribute name")
    iri = expand(name)
    if _is_instance_list(body):
        instances = [_parse_instance(name, iri, item, expand) for item in body]
    else:
        instances = [_parse_instance(name, iri, body, expand)]
    seen: set[str | None] = set()
    for inst in instances:
        ds = inst.get("datasetId")
        if ds in seen:
            which = f"datasetId '{ds}'" if ds else "no datasetId (default instance)"
            raise BadRequestData(f"attribute '{name}' has two instances with {which}")
        seen.add(ds)
    # Normal form: the default instance comes first, the others keep their order.
    instances.sort(key=lambda inst: "datasetId" in inst)
    return instances


def parse_types(raw: Any, expand: Expand) -> list[str]:
    """Entity type(s): a string or a non-empty list of strings → expanded IRIs, no duplicates."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise BadRequestData("entity 'type' must not be an empty list")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise BadRequestData("entity 'type' must be a string or a list of strings")
        check_name(item, "entity type")
        iri = expand(item)
        if iri not in out:
            out.append(iri)
    return out


def parse_scope(raw: Any) -> list[str]:
    """``scope``: a string or list of strings, each a path such as ``/Bangkok/Pathum_Wan``."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise BadRequestData("'scope' must not be an empty list")
    for item in items:
        if not isinstance(item, str) or not _SCOPE_RE.match(item):
            raise BadRequestData(
                f"invalid scope {item!r}: a scope is '/' followed by segments separated by '/',"
                " without whitespace, '#' or '+'")
    return list(items)


def check_uri(value: Any, what: str) -> str:
    """Raise unless ``value`` is an absolute URI (has a scheme)."""
    if not isinstance(value, str) or not _URI_RE.match(value):
        raise BadRequestData(f"{what} must be a URI with a scheme (e.g. urn:ngsi-ld:...),"
                             f" got {value!r}")
    return value


def check_name(name: Any, what: str) -> None:
    """Raise unless ``name`` is a usable entity type or attribute name (clause 4.6.2)."""
    if not isinstance(name, str) or not name:
        raise BadRequestData(f"{what} must be a non-empty string")
    if name.startswith("@"):
        raise BadRequestData(f"{what} {name!r} is a JSON-LD keyword, not a name")
    bad = _BAD_NAME_RE.search(name)
    if bad:
        raise BadRequestData(f"{what} {name!r} contains the forbidden character {bad.group()!r}")


def check_datetime(value: Any, what: str) -> str:
    """Raise unless ``value`` is an ISO 8601 DateTime with a time zone (``Z`` or offset)."""
    ok = isinstance(value, str) and _DATETIME_RE.match(value)
    if ok:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            ok = None
    if not ok:
        raise BadRequestData(f"{what} must be an ISO 8601 DateTime with a time zone"
                             f" (e.g. 2024-01-31T12:00:00Z), got {value!r}")
    return str(value)


def looks_like_instance(value: Any) -> bool:
    """Whether a JSON object is an attribute instance rather than a bare (concise) value."""
    if not isinstance(value, dict):
        return False
    t = value.get("type")
    return (isinstance(t, str) and _attr_type(t) is not None) or any(
        m in value for m in VALUE_MEMBERS)


def is_plain_value(value: Any) -> bool:
    """Whether ``value`` given alone as a concise attribute reads back as a Property holding it."""
    if value is None or looks_like_geometry(value) or _is_instance_list(value):
        return False
    if isinstance(value, dict):
        return not looks_like_instance(value) and not (
            "type" in value and any(k in value for k in _CLIENT_META))
    return True


def infer_type(name_iri: str, instance: dict[str, Any]) -> str | None:
    """The concise-representation type of an instance without ``"type"`` (None if bare value)."""
    present = [m for m in VALUE_MEMBERS if m in instance]
    if len(present) != 1:
        return None
    member = present[0]
    if member == "value":
        geo = name_iri in GEO_CORE_ATTRS or looks_like_geometry(instance["value"])
        return "GeoProperty" if geo else "Property"
    return next(t for t, m in VALUE_MEMBER.items() if m == member and t != "GeoProperty")


def _parse_attr_map(body: dict[str, Any], expand: Expand,
                    skip: frozenset[str]) -> dict[str, list[Instance]]:
    attrs: dict[str, list[Instance]] = {}
    for name, raw in body.items():
        if name in skip:
            continue
        instances = parse_attribute(name, raw, expand)
        iri = expand(name)
        if iri in attrs:
            raise BadRequestData(f"attribute '{name}' is given twice (under two names that"
                                 " expand to the same IRI)")
        attrs[iri] = instances
    return attrs


def _is_instance_list(body: Any) -> bool:
    # A list is a multi-attribute only when every item is an instance; otherwise it is a
    # concise bare value (e.g. ["a", "b"] or a list of plain objects).
    return isinstance(body, list) and bool(body) and all(looks_like_instance(i) for i in body)


def _attr_type(t: str) -> str | None:
    if t.startswith(model.NGSI_LD):
        t = t[len(model.NGSI_LD):]
    return t if t in ATTRIBUTE_TYPES else None


def _parse_instance(name: str, iri: str, body: Any, expand: Expand,
                    *, sub: bool = False) -> Instance:
    what = f"{'sub-attribute' if sub else 'attribute'} '{name}'"
    if body is None:
        raise BadRequestData(f"{what}: null is not a value (use \"urn:ngsi-ld:null\" to delete)")
    if isinstance(body, dict) and not looks_like_instance(body):
        if looks_like_geometry(body):
            body = {"type": "GeoProperty", "value": body}
        elif "type" in body and any(k in body for k in _CLIENT_META):
            raise BadRequestData(f"{what}: unknown attribute type {_short(body['type'])}")
        else:
            body = {"type": "Property", "value": body}
    elif not isinstance(body, dict):
        body = {"type": "Property", "value": body}
    raw_t = body.get("type", body.get("@type"))
    if raw_t is None:
        atype = infer_type(iri, body)
        if atype is None:
            members = sorted(m for m in VALUE_MEMBERS if m in body)
            raise BadRequestData(f"{what}: ambiguous, has several value members {members}")
    else:
        atype = _attr_type(raw_t) if isinstance(raw_t, str) else None
        if atype is None:
            raise BadRequestData(f"{what}: unknown attribute type {_short(raw_t)}; expected one"
                                 f" of {', '.join(ATTRIBUTE_TYPES)}")
    if iri in GEO_CORE_ATTRS and atype != "GeoProperty":
        raise BadRequestData(f"{what} must be a GeoProperty, not a {atype}")
    member = VALUE_MEMBER[atype]
    for other in VALUE_MEMBERS - {member}:
        if other in body:
            raise BadRequestData(f"{what}: a {atype} has no '{other}' member")
    if member not in body or body[member] is None:
        raise BadRequestData(f"{what}: a {atype} needs a non-null '{member}'")
    inst: Instance = {"type": atype, member: _parse_value(atype, body[member], what, expand)}
    _parse_meta(atype, body, inst, what, expand)
    for key, raw in body.items():
        if key in model.META_MEMBERS or key in _IGNORED_MEMBERS or key == "@type":
            continue
        check_name(key, f"{what}: sub-attribute name")
        sub_iri = expand(key)
        if _is_instance_list(raw):
            raise BadRequestData(f"{what}: sub-attribute '{key}' cannot have several instances")
        inst[sub_iri] = _parse_instance(key, sub_iri, raw, expand, sub=True)
    return inst


def _parse_value(atype: str, value: Any, what: str, expand: Expand) -> Any:
    if atype == "GeoProperty":
        validate_geometry(value, f"{what} value")
    elif atype == "Relationship":
        _check_uris(value, f"{what} object")
    elif atype == "LanguageProperty":
        _check_language_map(value, what)
    elif atype == "VocabProperty":
        return _expand_list(value, f"{what} vocab", expand)
    elif atype == "ListProperty":
        if not isinstance(value, list):
            raise BadRequestData(f"{what}: 'valueList' must be an array")
    elif atype == "ListRelationship":
        if not isinstance(value, list):
            raise BadRequestData(f"{what}: 'objectList' must be an array")
        out = []
        for item in value:
            obj = item.get("object") if isinstance(item, dict) else item
            out.append({"object": check_uri(obj, f"{what} objectList item")})
        return out
    return value


def _parse_meta(atype: str, body: dict[str, Any], inst: Instance, what: str,
                expand: Expand) -> None:
    if "datasetId" in body:
        inst["datasetId"] = check_uri(body["datasetId"], f"{what} datasetId")
    if "observedAt" in body:
        inst["observedAt"] = check_datetime(body["observedAt"], f"{what} observedAt")
    if "unitCode" in body:
        if not isinstance(body["unitCode"], str) or not body["unitCode"]:
            raise BadRequestData(f"{what}: 'unitCode' must be a non-empty string")
        inst["unitCode"] = body["unitCode"]
    if "objectType" in body:
        if atype not in ("Relationship", "ListRelationship"):
            raise BadRequestData(f"{what}: only relationships have 'objectType'")
        inst["objectType"] = _expand_list(body["objectType"], f"{what} objectType", expand)


def _check_uris(value: Any, what: str) -> None:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise BadRequestData(f"{what} must not be an empty list")
    for item in items:
        check_uri(item, what)


def _expand_list(value: Any, what: str, expand: Expand) -> str | list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, str) and i for i in items):
        raise BadRequestData(f"{what} must be a non-empty string or list of strings")
    out = [expand(i) for i in items]
    return out if isinstance(value, list) else out[0]


def _check_language_map(value: Any, what: str) -> None:
    if not isinstance(value, dict) or not value:
        raise BadRequestData(f"{what}: 'languageMap' must be a non-empty JSON object")
    for tag, text in value.items():
        if tag != "@none" and not _LANG_TAG_RE.match(tag):
            raise BadRequestData(f"{what}: {tag!r} is not a BCP 47 language tag (or '@none')")
        ok = isinstance(text, str) or (isinstance(text, list) and bool(text)
                                       and all(isinstance(t, str) for t in text))
        if not ok:
            raise BadRequestData(f"{what}: languageMap['{tag}'] must be a string or a list"
                                 " of strings")
