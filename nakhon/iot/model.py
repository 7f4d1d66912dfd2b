"""The device registry's model: service groups, devices and their attribute mappings.

Field names follow the FIWARE IoT Agent provisioning API (``apikey``, ``entity_type``,
``resource``, ``device_id``, ``entity_name``, ``attributes: [{object_id, name, type}]``,
``static_attributes``, ``explicitAttrs``, ``autoprovision``), so provisioning scripts written
for an IoT Agent work here. Bodies are checked with direct dict checks (DESIGN.md, "cheap JSON")
and every mistake is a :class:`~nakhon.core.errors.BadRequestData` naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from nakhon.broker import validate
from nakhon.core.errors import BadRequestData

DEFAULT_RESOURCE = "/iot/d"

# IoT Agent attribute types and what they become in NGSI-LD (iotagent-node-lib's LD mapping).
NUMBER_TYPES = frozenset({"Number", "Float", "Double", "Decimal", "Percentage"})
INTEGER_TYPES = frozenset({"Integer", "Int"})
BOOLEAN_TYPES = frozenset({"Boolean", "Bool"})
TEXT_TYPES = frozenset({"Text", "String", "DateTime", "Date", "Time", "URL", "URI"})
GEO_TYPES = frozenset({"geo:point", "geo:json", "GeoProperty", "geo:line", "geo:polygon"})
JSON_TYPES = frozenset({"JsonProperty", "Object", "StructuredValue", "Array", "geo:box"})
RELATIONSHIP_TYPES = frozenset({"Relationship"})
KNOWN_TYPES = (NUMBER_TYPES | INTEGER_TYPES | BOOLEAN_TYPES | TEXT_TYPES | GEO_TYPES
               | JSON_TYPES | RELATIONSHIP_TYPES | {"Property"})

_ID_RE = re.compile(r"^[^\s/#+]{1,256}$")
"""Device ids and API keys are MQTT topic levels: no '/', no wildcards, no spaces."""


@dataclass(slots=True)
class AttrMapping:
    """How one measured object id becomes an attribute: ``name`` (a term or IRI), IoT Agent
    ``type`` (casts the value and picks the NGSI-LD attribute type), optional ``unitCode``."""

    object_id: str
    name: str
    type: str = ""
    unit_code: str | None = None

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"object_id": self.object_id, "name": self.name}
        if self.type:
            doc["type"] = self.type
        if self.unit_code:
            doc["unitCode"] = self.unit_code
        return doc


@dataclass(slots=True)
class ServiceGroup:
    """A service group: devices sharing an API key, a tenant and defaults."""

    apikey: str
    entity_type: str
    tenant: str = ""
    resource: str = DEFAULT_RESOURCE
    attributes: list[AttrMapping] = field(default_factory=list)
    static_attributes: list[dict[str, Any]] = field(default_factory=list)
    explicit_attrs: bool = False
    autoprovision: bool = False
    description: str = ""

    def to_doc(self) -> dict[str, Any]:
        return {
            "apikey": self.apikey,
            "tenant": self.tenant,
            "entity_type": self.entity_type,
            "resource": self.resource,
            "attributes": [a.to_doc() for a in self.attributes],
            "static_attributes": self.static_attributes,
            "explicitAttrs": self.explicit_attrs,
            "autoprovision": self.autoprovision,
            "description": self.description,
        }


@dataclass(slots=True)
class Device:
    """A provisioned device: ``device_id`` (unique within a tenant) → one entity."""

    device_id: str
    apikey: str
    entity_name: str
    entity_type: str
    tenant: str = ""
    attributes: list[AttrMapping] = field(default_factory=list)
    static_attributes: list[dict[str, Any]] = field(default_factory=list)
    location: dict[str, Any] | None = None
    explicit_attrs: bool | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "apikey": self.apikey,
            "tenant": self.tenant,
            "entity_name": self.entity_name,
            "entity_type": self.entity_type,
            "attributes": [a.to_doc() for a in self.attributes],
            "static_attributes": self.static_attributes,
            "location": self.location,
            "explicitAttrs": self.explicit_attrs,
        }


# --- parsing provisioning bodies ----------------------------------------------------------


def _str(doc: dict[str, Any], key: str, *, required: bool = False, default: str = "") -> str:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            raise BadRequestData(f"'{key}' is required.")
        return default
    if not isinstance(value, str):
        raise BadRequestData(f"'{key}' must be a string.")
    return value


def _bool(doc: dict[str, Any], key: str, default: bool | None) -> bool | None:
    value = doc.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise BadRequestData(f"'{key}' must be true or false.")
    return value


def check_key(value: str, what: str) -> str:
    if not _ID_RE.match(value):
        raise BadRequestData(f"{what} {value!r} must be 1–256 characters without spaces, "
                             "'/', '#' or '+' (it is an MQTT topic level).")
    return value


def parse_mappings(raw: Any) -> list[AttrMapping]:
    """``attributes``: ``[{object_id?, name, type?, unitCode? | metadata.unitCode.value}]``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequestData("'attributes' must be an array.")
    out: list[AttrMapping] = []
    for item in raw:
        if not isinstance(item, dict):
            raise BadRequestData("Each attribute mapping must be an object.")
        name = _str(item, "name", required=True)
        validate.check_name(name, "Attribute name")
        object_id = _str(item, "object_id", default=name)
        atype = _str(item, "type")
        if atype and atype not in KNOWN_TYPES:
            raise BadRequestData(f"Attribute {name!r}: unknown type {atype!r}; use one of "
                                 f"{', '.join(sorted(KNOWN_TYPES))}.")
        unit = item.get("unitCode")
        meta = item.get("metadata")
        if unit is None and isinstance(meta, dict) and isinstance(meta.get("unitCode"), dict):
            unit = meta["unitCode"].get("value")
        if unit is not None and not isinstance(unit, str):
            raise BadRequestData(f"Attribute {name!r}: unitCode must be a string.")
        out.append(AttrMapping(object_id, name, atype, unit))
    return out


def parse_static(raw: Any) -> list[dict[str, Any]]:
    """``static_attributes``: ``[{name, type, value}]`` (IoT Agent form), kept as given."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(
        isinstance(a, dict) and isinstance(a.get("name"), str) and "value" in a for a in raw
    ):
        raise BadRequestData("'static_attributes' must be an array of {name, type, value}.")
    for a in raw:
        validate.check_name(a["name"], "Attribute name")
        if a.get("type", "") and a["type"] not in KNOWN_TYPES:
            raise BadRequestData(f"Static attribute {a['name']!r}: unknown type {a['type']!r}.")
    return [dict(a) for a in raw]


def parse_location(raw: Any) -> dict[str, Any] | None:
    """``location``: a GeoJSON geometry, ``"lat,lon"`` or ``{"lat": .., "lon": ..}``."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return point_from_text(raw)
    if isinstance(raw, dict) and "lat" in raw and ("lon" in raw or "lng" in raw):
        lon = raw.get("lon", raw.get("lng"))
        return point_from_text(f"{raw['lat']},{lon}")
    validate.validate_geometry(raw, "location")
    return dict(raw)


def point_from_text(text: str) -> dict[str, Any]:
    """``"lat, lon"`` (the IoT Agents' ``geo:point`` order) → a GeoJSON Point ``[lon, lat]``."""
    parts = text.split(",")
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        raise BadRequestData(f"{text!r} is not 'latitude,longitude'.") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadRequestData(f"{text!r} is out of range for 'latitude,longitude'.")
    return {"type": "Point", "coordinates": [lon, lat]}


def parse_group(doc: Any, tenant: str) -> ServiceGroup:
    if not isinstance(doc, dict):
        raise BadRequestData("A service group must be a JSON object.")
    resource = _str(doc, "resource", default=DEFAULT_RESOURCE)
    if not resource.startswith("/"):
        raise BadRequestData("'resource' must be a path such as /iot/d.")
    return ServiceGroup(
        apikey=check_key(_str(doc, "apikey", required=True), "apikey"),
        entity_type=_str(doc, "entity_type", required=True),
        tenant=_str(doc, "tenant", default=tenant),
        resource=resource,
        attributes=parse_mappings(doc.get("attributes")),
        static_attributes=parse_static(doc.get("static_attributes")),
        explicit_attrs=bool(_bool(doc, "explicitAttrs", False)),
        autoprovision=bool(_bool(doc, "autoprovision", False)),
        description=_str(doc, "description"),
    )


def default_entity_id(entity_type: str, device_id: str) -> str:
    """The entity id of a device without ``entity_name``, as IoT Agents for NGSI-LD form it."""
    return f"urn:ngsi-ld:{entity_type}:{device_id}"


def parse_device(doc: Any, tenant: str, group: ServiceGroup | None) -> Device:
    """A device body; ``group`` (found by the body's ``apikey``) gives the defaults."""
    if not isinstance(doc, dict):
        raise BadRequestData("A device must be a JSON object.")
    device_id = check_key(_str(doc, "device_id", required=True), "device_id")
    apikey = _str(doc, "apikey", default=group.apikey if group else "")
    if not apikey:
        raise BadRequestData("'apikey' is required (the device's service group).")
    entity_type = _str(doc, "entity_type", default=group.entity_type if group else "")
    if not entity_type:
        raise BadRequestData("'entity_type' is required (or a service group that has one).")
    entity_name = _str(doc, "entity_name", default=default_entity_id(entity_type, device_id))
    validate.check_uri(entity_name, "entity_name")
    return Device(
        device_id=device_id,
        apikey=apikey,
        entity_name=entity_name,
        entity_type=entity_type,
        tenant=_str(doc, "tenant", default=tenant),
        attributes=parse_mappings(doc.get("attributes")),
        static_attributes=parse_static(doc.get("static_attributes")),
        location=parse_location(doc.get("location")),
        explicit_attrs=_bool(doc, "explicitAttrs", None),
    )
