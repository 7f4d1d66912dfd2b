"""Alert rules: their JSON form, validation and the parsed :class:`Rule`.

The rule kinds and their members are described in :mod:`nakhon.domains.alerts` and
docs/domains.md. Parsing is strict (unknown members, wrong types and impossible combinations are
BadRequestData naming the rule), so a stored rule list is always one the evaluator understands.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from nakhon.broker.model import Entity
from nakhon.broker.query import GeoQuery, ScopeExpr, match_geo, match_scope, parse_geo
from nakhon.broker.query import parse_scope_q as _parse_scope_q
from nakhon.core.errors import BadRequestData

Kind = Literal["threshold", "rate", "absence"]
SEVERITIES = ("informational", "low", "medium", "high", "critical")
WINDOWS = {"1h": 1, "8h": 8, "24h": 24}
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,63}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]{0,99}$")
MAX_RULES = 200


@dataclass(frozen=True, slots=True)
class Area:
    """Where a rule applies: a geometry (``location`` must intersect it) and/or a scopeQ."""

    doc: dict[str, Any]
    geo: GeoQuery | None = None
    scope: ScopeExpr | None = None

    def contains(self, entity: Entity) -> bool:
        if self.geo is not None and not match_geo(self.geo, entity):
            return False
        return self.scope is None or match_scope(self.scope, entity.scope)


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule (parse with :func:`parse_rule`; :meth:`doc` gives the JSON form back)."""

    id: str
    kind: Kind
    types: tuple[str, ...]
    attr: str | None
    severity: str
    category: str
    sub_category: str
    title: dict[str, str]
    op: str = ">"
    value: float | None = None
    value_attr: str | None = None
    clear_value: float | None = None
    window: str | None = None
    delta: float | None = None
    minutes: float | None = None
    direction: str = "any"
    area: Area | None = None
    enabled: bool = True

    def doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "types": list(self.types),
            "attr": self.attr,
            "severity": self.severity,
            "category": self.category,
            "subCategory": self.sub_category,
            "title": dict(self.title),
            "enabled": self.enabled,
        }
        if self.kind == "threshold":
            out.update(
                op=self.op,
                value=self.value,
                valueAttr=self.value_attr,
                clearValue=self.clear_value,
                window=self.window,
            )
        elif self.kind == "rate":
            out.update(delta=self.delta, minutes=self.minutes, direction=self.direction)
        else:
            out.update(minutes=self.minutes)
        if self.area is not None:
            out["area"] = dict(self.area.doc)
        return {k: v for k, v in out.items() if v is not None}

    @property
    def window_hours(self) -> int | None:
        return WINDOWS[self.window] if self.window else None


# --- parsing -------------------------------------------------------------------------------


def _bad(rule_id: str, message: str) -> BadRequestData:
    return BadRequestData(f"Alert rule {rule_id!r}: {message}")


def _number(doc: dict[str, Any], key: str, rid: str, *, positive: bool = False) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise _bad(rid, f"{key} must be a number.")
    if positive and value <= 0:
        raise _bad(rid, f"{key} must be greater than 0.")
    return float(value)


def _text_map(doc: Any, rid: str) -> dict[str, str]:
    if (
        not isinstance(doc, dict)
        or not all(k in ("th", "en") and isinstance(v, str) and v.strip() for k, v in doc.items())
        or not doc
    ):
        raise _bad(rid, 'title must be {"th": text, "en": text}.')
    return {"th": doc.get("th") or doc["en"], "en": doc.get("en") or doc["th"]}


def _parse_area(doc: Any, rid: str) -> Area:
    if not isinstance(doc, dict) or not doc or set(doc) - {"bbox", "polygon", "scopeQ"}:
        raise _bad(rid, "area must be an object with bbox, polygon and/or scopeQ.")
    if "bbox" in doc and "polygon" in doc:
        raise _bad(rid, "area takes bbox or polygon, not both.")
    geo = None
    coords: Any = None
    if "bbox" in doc:
        box = doc["bbox"]
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(n, int | float) and not isinstance(n, bool) for n in box)
            or box[0] >= box[2]
            or box[1] >= box[3]
        ):
            raise _bad(rid, "bbox must be [minLon, minLat, maxLon, maxLat] with min < max.")
        w, s, e, n = box
        coords = [[[w, s], [e, s], [e, n], [w, n], [w, s]]]
    elif "polygon" in doc:
        coords = doc["polygon"]
    if coords is not None:
        try:
            geo = parse_geo("Polygon", "intersects", coords, None, lambda t: t)
        except BadRequestData as exc:
            raise _bad(rid, f"area: {exc.detail}") from None
    scope = None
    if "scopeQ" in doc:
        if not isinstance(doc["scopeQ"], str):
            raise _bad(rid, "area.scopeQ must be a string.")
        try:
            scope = _parse_scope_q(doc["scopeQ"])
        except BadRequestData as exc:
            raise _bad(rid, f"area.scopeQ: {exc.detail}") from None
    return Area(dict(doc), geo, scope)


_KNOWN = {
    "id",
    "kind",
    "types",
    "attr",
    "severity",
    "category",
    "subCategory",
    "title",
    "enabled",
    "op",
    "value",
    "valueAttr",
    "clearValue",
    "window",
    "delta",
    "minutes",
    "direction",
    "area",
}


def parse_rule(doc: Any) -> Rule:
    """A rule from its JSON form; BadRequestData says what is wrong."""
    if not isinstance(doc, dict):
        raise BadRequestData("Each alert rule must be a JSON object.")
    rid = doc.get("id")
    if not isinstance(rid, str) or not _ID.match(rid):
        raise BadRequestData("Each alert rule needs an id: 1-64 letters, digits, '_', '-', '.'.")
    unknown = set(doc) - _KNOWN
    if unknown:
        raise _bad(rid, f"unknown members {sorted(unknown)}.")
    kind = doc.get("kind")
    if kind not in ("threshold", "rate", "absence"):
        raise _bad(rid, "kind must be threshold, rate or absence.")
    types = doc.get("types")
    if (
        not isinstance(types, list)
        or not types
        or not all(isinstance(t, str) and _NAME.match(t) for t in types)
    ):
        raise _bad(rid, "types must be a non-empty list of entity type names.")
    attr = doc.get("attr")
    if attr is not None and (not isinstance(attr, str) or not _NAME.match(attr)):
        raise _bad(rid, "attr must be an attribute name.")
    if attr is None and kind != "absence":
        raise _bad(rid, f"a {kind} rule needs attr.")
    severity = doc.get("severity", "medium")
    if severity not in SEVERITIES:
        raise _bad(rid, f"severity must be one of {', '.join(SEVERITIES)}.")
    for key in ("category", "subCategory"):
        if key in doc and (not isinstance(doc[key], str) or not doc[key].strip()):
            raise _bad(rid, f"{key} must be a non-empty string.")
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _bad(rid, "enabled must be true or false.")
    common: dict[str, Any] = {
        "id": rid,
        "kind": kind,
        "types": tuple(types),
        "attr": attr,
        "severity": severity,
        "category": doc.get("category", "environment"),
        "sub_category": doc.get("subCategory", rid),
        "title": _text_map(doc.get("title", {"en": rid}), rid),
        "enabled": enabled,
        "area": _parse_area(doc["area"], rid) if doc.get("area") is not None else None,
    }
    minutes = _number(doc, "minutes", rid, positive=True)
    if kind == "threshold":
        op = doc.get("op", ">")
        if op not in OPS:
            raise _bad(rid, f"op must be one of {' '.join(OPS)}.")
        value, value_attr = _number(doc, "value", rid), doc.get("valueAttr")
        if (value is None) == (value_attr is None):
            raise _bad(rid, "a threshold rule needs exactly one of value or valueAttr.")
        if value_attr is not None and (
            not isinstance(value_attr, str) or not _NAME.match(value_attr)
        ):
            raise _bad(rid, "valueAttr must be an attribute name.")
        window = doc.get("window")
        if window is not None and window not in WINDOWS:
            raise _bad(rid, f"window must be one of {', '.join(WINDOWS)}.")
        return Rule(
            **common,
            op=op,
            value=value,
            value_attr=value_attr,
            clear_value=_number(doc, "clearValue", rid),
            window=window,
        )
    if minutes is None:
        raise _bad(rid, f"a {kind} rule needs minutes.")
    if kind == "rate":
        delta = _number(doc, "delta", rid, positive=True)
        if delta is None:
            raise _bad(rid, "a rate rule needs delta (> 0).")
        direction = doc.get("direction", "any")
        if direction not in ("up", "down", "any"):
            raise _bad(rid, "direction must be up, down or any.")
        return Rule(**common, delta=delta, minutes=minutes, direction=direction)
    return Rule(**common, minutes=minutes)


def parse_rules(doc: Any) -> list[Rule]:
    """A rule list (``[...]`` or ``{"rules": [...]}``); ids must be unique."""
    items = doc.get("rules") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise BadRequestData('The body must be {"rules": [rule, ...]} or a list of rules.')
    if len(items) > MAX_RULES:
        raise BadRequestData(f"At most {MAX_RULES} alert rules per city.")
    rules = [parse_rule(item) for item in items]
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise BadRequestData(f"Alert rule id {rule.id!r} is used twice.")
        seen.add(rule.id)
    return rules
