"""Measures → NGSI-LD attribute instances, by a device's attribute mapping.

A device's mapping is compiled once (:class:`Target`) and cached by the registry, so the hot
path per measure is a dict look-up and a cast per value. Casting follows the IoT Agents: the
mapped IoT Agent type (``Number``, ``Integer``, ``Boolean``, ``Text``, ``geo:point`` …) casts
the raw value and picks the NGSI-LD attribute type; an unmapped object id becomes a Property of
the same name, its value kept as sent (JSON) or read as a number when it looks like one (UL
sends text only, and a city wants ``t|25.3`` to be a number).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nakhon.broker import validate
from nakhon.broker.jsonld import CORE_TERM_MAP
from nakhon.broker.model import LOCATION, Instance
from nakhon.iot.model import (
    BOOLEAN_TYPES,
    GEO_TYPES,
    INTEGER_TYPES,
    NUMBER_TYPES,
    RELATIONSHIP_TYPES,
    TEXT_TYPES,
    AttrMapping,
    Device,
    ServiceGroup,
    point_from_text,
)
from nakhon.iot.payloads import Measure, PayloadError

_NUMBER_RE = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_INT_RE = re.compile(r"^-?\d{1,18}$")

Build = Callable[[Any], Instance]


def expand(name: str) -> str:
    """An attribute name or entity type → IRI with the core @context (default vocab)."""
    return CORE_TERM_MAP.expand(name)


# --- value casts (each raises PayloadError) -----------------------------------------------


def _number(raw: Any) -> float | int:
    if isinstance(raw, bool):
        raise PayloadError(f"{raw!r} is not a number")
    if isinstance(raw, int | float):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise PayloadError(f"{raw!r} is not a finite number")
        return raw
    if isinstance(raw, str) and _NUMBER_RE.match(raw.strip()):
        text = raw.strip()
        value = int(text) if _INT_RE.match(text) else float(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise PayloadError(f"{raw!r} is not a finite number")
        return value
    raise PayloadError(f"{_short(raw)} is not a number")


def _integer(raw: Any) -> int:
    value = _number(raw)
    if isinstance(value, float):
        if not value.is_integer():
            raise PayloadError(f"{raw!r} is not an integer")
        return int(value)
    return value


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str | int):
        low = str(raw).strip().lower()
        if low in ("true", "1", "on", "yes"):
            return True
        if low in ("false", "0", "off", "no"):
            return False
    raise PayloadError(f"{_short(raw)} is not a boolean")


def _geometry(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("{"):
            import orjson

            try:
                raw = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise PayloadError(f"{_short(raw)} is not GeoJSON") from None
        else:
            try:
                return point_from_text(text)
            except Exception as exc:  # BadRequestData: rephrase as a payload problem
                raise PayloadError(str(exc)) from None
    try:
        validate.validate_geometry(raw, "geometry")
    except Exception as exc:
        raise PayloadError(str(exc)) from None
    assert isinstance(raw, dict)
    return raw


def _plain(raw: Any, *, text_numbers: bool) -> Any:
    """The value of an untyped Property: JSON values as sent; UL text that is a number → number."""
    if raw is None:
        raise PayloadError("null is not a value")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise PayloadError(f"{raw!r} is not a finite number")
    if text_numbers and isinstance(raw, str) and _NUMBER_RE.match(raw.strip()):
        return _number(raw)
    return raw


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def builder(atype: str, unit: str | None, *, text_numbers: bool) -> Build:
    """The function turning one raw value into an instance (without ``observedAt``)."""
    extra: dict[str, Any] = {"unitCode": unit} if unit else {}
    if atype in NUMBER_TYPES:
        return lambda raw: {"type": "Property", "value": _number(raw), **extra}
    if atype in INTEGER_TYPES:
        return lambda raw: {"type": "Property", "value": _integer(raw), **extra}
    if atype in BOOLEAN_TYPES:
        return lambda raw: {"type": "Property", "value": _boolean(raw), **extra}
    if atype in TEXT_TYPES:
        return lambda raw: {"type": "Property", "value": _text(raw), **extra}
    if atype in GEO_TYPES:
        return lambda raw: {"type": "GeoProperty", "value": _geometry(raw)}
    if atype in RELATIONSHIP_TYPES:
        return lambda raw: {"type": "Relationship", "object": _uri(raw)}
    if atype == "JsonProperty":
        return lambda raw: {"type": "JsonProperty", "json": _plain(raw, text_numbers=False)}
    return lambda raw: {"type": "Property", "value": _plain(raw, text_numbers=text_numbers),
                        **extra}


def _text(raw: Any) -> str:
    if raw is None:
        raise PayloadError("null is not a value")
    return raw if isinstance(raw, str) else str(raw)


def _uri(raw: Any) -> str:
    if not isinstance(raw, str) or ":" not in raw:
        raise PayloadError(f"{_short(raw)} is not a URI for a Relationship")
    return raw


# --- compiled devices ---------------------------------------------------------------------


@dataclass(slots=True)
class Rule:
    iri: str
    build: Build
    build_text: Build  # the same for UL text values (untyped numbers are read as numbers)


@dataclass(slots=True)
class Target:
    """Where a device's measures go: tenant, entity, and the compiled attribute rules."""

    tenant: str
    entity_id: str
    types: list[str]
    device_id: str
    apikey: str
    rules: dict[str, Rule] = field(default_factory=dict)
    explicit: bool = False

    def rule(self, object_id: str) -> Rule | None:
        rule = self.rules.get(object_id)
        if rule is None and not self.explicit:
            # Unmapped object ids pass through under their own name (IoT Agent default).
            rule = _rule(AttrMapping(object_id, object_id))
            if len(self.rules) < 4096:
                self.rules[object_id] = rule
        return rule

    def to_attrs(self, measure: Measure, received_at: str, *,
                 text: bool) -> dict[str, list[Instance]]:
        """One measure as attributes; every instance carries ``observedAt``."""
        observed = measure.observed_at or received_at
        attrs: dict[str, list[Instance]] = {}
        for object_id, raw in measure.values.items():
            rule = self.rule(object_id)
            if rule is None:
                continue  # explicitAttrs: only mapped attributes are kept
            try:
                inst = rule.build_text(raw) if text else rule.build(raw)
            except PayloadError as exc:
                raise PayloadError(f"attribute {object_id!r}: {exc}") from None
            inst["observedAt"] = observed
            attrs[rule.iri] = [inst]
        return attrs


def _rule(m: AttrMapping) -> Rule:
    return Rule(expand(m.name), builder(m.type, m.unit_code, text_numbers=False),
                builder(m.type, m.unit_code, text_numbers=True))


def compile_target(device: Device, group: ServiceGroup | None) -> Target:
    """The device's rules: the group's mapping, then the device's own (which wins)."""
    rules: dict[str, Rule] = {}
    for m in (group.attributes if group else []):
        rules[m.object_id] = _rule(m)
    for m in device.attributes:
        rules[m.object_id] = _rule(m)
    explicit = device.explicit_attrs
    if explicit is None:
        explicit = group.explicit_attrs if group else False
    return Target(device.tenant, device.entity_name, [expand(device.entity_type)],
                  device.device_id, device.apikey, rules, explicit)


def static_attrs(device: Device, group: ServiceGroup | None) -> dict[str, list[Instance]]:
    """The entity's static attributes (group's, then device's) and ``location``.

    Raises PayloadError when a static value does not fit its declared type."""
    attrs: dict[str, list[Instance]] = {}
    for a in [*(group.static_attributes if group else []), *device.static_attributes]:
        build = builder(str(a.get("type", "")), a.get("unitCode"), text_numbers=False)
        try:
            attrs[expand(a["name"])] = [build(a["value"])]
        except PayloadError as exc:
            raise PayloadError(f"static attribute {a['name']!r}: {exc}") from None
    if device.location is not None:
        attrs[LOCATION] = [{"type": "GeoProperty", "value": device.location}]
    return attrs
