"""Subscriptions (ETSI GS CIM 009 V1.8.1, 5.2.12 / 5.8) in one normal form.

A subscription is stored as the JSON the client gave (terms compact w.r.t. its own
``jsonldContext``) and parsed into :class:`Subscription` — expanded IRIs, parsed ``q``/``geoQ``/
``scopeQ``/type selections, compiled ``idPattern`` s — with the TermMap of that context. The
matcher and the notifier work on the parsed form only; :func:`render_subscription` gives a
client its view with *its* context.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from nakhon.broker import query as ql
from nakhon.broker.jsonld import TermMap
from nakhon.broker.query.regex import PortablePattern, portable_pattern
from nakhon.broker.validate import check_datetime
from nakhon.core.errors import BadRequestData

TRIGGERS = (
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
)
DEFAULT_TRIGGERS = frozenset({"attributeCreated", "attributeUpdated"})
ACCEPTS = ("application/json", "application/ld+json", "application/geo+json")
FORMATS = {"normalized": "normalized", "concise": "concise", "keyValues": "simplified",
           "simplified": "simplified"}
SCHEMES = ("http", "https", "mqtt", "mqtts")
# Members the system writes; a client may send them back (e.g. after a GET) and they are ignored.
READ_ONLY = frozenset({"status", "createdAt", "modifiedAt", "deletedAt"})
READ_ONLY_NOTIFICATION = frozenset(
    {"status", "timesSent", "timesFailed", "lastNotification", "lastSuccess", "lastFailure"}
)

Format = Literal["normalized", "concise", "simplified"]


@dataclass(slots=True)
class Selector:
    """One EntitySelector: id, idPattern and/or a type selection."""

    id: str | None = None
    id_pattern: PortablePattern | None = None
    types: ql.TypeExpr | None = None
    # The type IRIs when the selection is a plain disjunction (indexable), else None.
    type_iris: list[str] | None = None

    def matches(self, entity_id: str, types: list[str]) -> bool:
        if self.id is not None and self.id != entity_id:
            return False
        if self.id_pattern is not None and not self.id_pattern.search(entity_id):
            return False
        return self.types is None or ql.match_types(self.types, types)


@dataclass(slots=True)
class Endpoint:
    uri: str
    accept: str = "application/json"
    timeout_ms: float | None = None
    receiver_info: list[tuple[str, str]] = field(default_factory=list)
    notifier_info: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Subscription:
    """A parsed subscription (see the module docstring)."""

    id: str
    terms: TermMap
    context: Any  # the jsonldContext: what notifications are compacted with
    endpoint: Endpoint
    entities: list[Selector] = field(default_factory=list)
    watched: frozenset[str] | None = None
    triggers: frozenset[str] = DEFAULT_TRIGGERS
    q: ql.QExpr | None = None
    geo: ql.GeoQuery | None = None
    scope_q: ql.ScopeExpr | None = None
    throttling: float = 0.0
    time_interval: float | None = None
    expires_at: str | None = None
    is_active: bool = True
    lang: str | None = None
    attributes: set[str] | None = None
    format: Format = "normalized"
    show_changes: bool = False
    sys_attrs: bool = False
    doc: dict[str, Any] = field(default_factory=dict)

    def status(self, now: str) -> str:
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active" if self.is_active else "paused"

    def live(self, now: str) -> bool:
        """Generates notifications now (active, not expired)."""
        return self.is_active and (self.expires_at is None or now < self.expires_at)

    @property
    def by_type_only(self) -> bool:
        """Selects entities by plain types alone (then the type index has already decided)."""
        return bool(self.entities) and all(
            s.id is None and s.id_pattern is None and s.type_iris is not None
            for s in self.entities)


def new_id() -> str:
    return f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"


def utc_text(value: str) -> str:
    """A DateTime with zone → ``YYYY-MM-DDTHH:MM:SS.mmmZ``, comparable as text with ``now``."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _bad(detail: str) -> BadRequestData:
    return BadRequestData(f"Invalid subscription: {detail}")


def _str(doc: dict[str, Any], key: str, what: str | None = None) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(f"{what or key} must be a non-empty string")
    return value


def _names(value: Any, what: str, terms: TermMap) -> list[str]:
    if not isinstance(value, list) or not value or not all(
        isinstance(v, str) and v for v in value
    ):
        raise _bad(f"{what} must be a non-empty array of attribute names")
    return [terms.expand(v) for v in value]


def _number(doc: dict[str, Any], key: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _bad(f"{key} must be a positive number (seconds)")
    return float(value)


def check_uri(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"{what} must be a URI string")
    scheme, sep, rest = value.partition(":")
    if not sep or not rest or not scheme[:1].isalpha() or any(c in value for c in ' <>"{}|\\^`'):
        raise _bad(f"{what} {value!r} is not a valid URI")
    return value


def _selector(raw: Any, terms: TermMap) -> Selector:
    if not isinstance(raw, dict):
        raise _bad("each member of entities must be an object")
    sel = Selector()
    if raw.get("id") is not None:
        sel.id = check_uri(raw["id"], "entities[].id")
    pattern = _str(raw, "idPattern", "entities[].idPattern")
    if pattern is not None:
        sel.id_pattern = portable_pattern(pattern, "entities[].idPattern")
    type_text = _str(raw, "type", "entities[].type")
    if type_text is None:
        raise _bad("each member of entities needs a type")
    sel.types = ql.parse_type_selection(type_text, terms.expand)
    if isinstance(sel.types, str):
        sel.type_iris = [sel.types]
    elif isinstance(sel.types, ql.Or) and all(isinstance(i, str) for i in sel.types.items):
        sel.type_iris = [str(i) for i in sel.types.items]
    return sel


def _key_values(value: Any, what: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(f"{what} must be an array of {{key, value}} objects")
    out: list[tuple[str, str]] = []
    for item in value:
        if not (isinstance(item, dict) and isinstance(item.get("key"), str)
                and isinstance(item.get("value"), str) and item["key"]):
            raise _bad(f"{what} must be an array of {{key, value}} objects with string members")
        out.append((item["key"], item["value"]))
    return out


def _endpoint(raw: Any) -> Endpoint:
    if not isinstance(raw, dict):
        raise _bad("notification.endpoint must be an object")
    uri = check_uri(raw.get("uri"), "notification.endpoint.uri")
    scheme = uri.split(":", 1)[0].lower()
    if scheme not in SCHEMES:
        raise _bad(f"notification.endpoint.uri must use one of {', '.join(SCHEMES)}")
    if not uri.split(":", 1)[1].startswith("//") or len(uri.split("/")) < 3 or \
            not uri.split("/")[2]:
        raise _bad("notification.endpoint.uri needs a host")
    accept = raw.get("accept", "application/json")
    if accept not in ACCEPTS:
        raise _bad(f"notification.endpoint.accept must be one of {', '.join(ACCEPTS)}")
    timeout = raw.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or timeout <= 0):
        raise _bad("notification.endpoint.timeout must be a positive number of milliseconds")
    notifier = _key_values(raw.get("notifierInfo"), "notification.endpoint.notifierInfo")
    for key, value in notifier:
        if key == "MQTT-QoS" and value not in ("0", "1", "2"):
            raise _bad("MQTT-QoS must be 0, 1 or 2")
    return Endpoint(uri, accept, float(timeout) if timeout is not None else None,
                    _key_values(raw.get("receiverInfo"), "notification.endpoint.receiverInfo"),
                    notifier)


def _notification(sub: Subscription, raw: Any, terms: TermMap) -> None:
    if not isinstance(raw, dict):
        raise _bad("notification must be an object")
    if raw.get("attributes") is not None:
        sub.attributes = set(_names(raw["attributes"], "notification.attributes", terms))
    fmt = raw.get("format", "normalized")
    if fmt not in FORMATS:
        raise _bad("notification.format must be normalized, concise or keyValues")
    sub.format = FORMATS[fmt]  # type: ignore[assignment]
    for key in ("showChanges", "sysAttrs"):
        if key in raw and not isinstance(raw[key], bool):
            raise _bad(f"notification.{key} must be true or false")
    sub.show_changes = bool(raw.get("showChanges", False))
    sub.sys_attrs = bool(raw.get("sysAttrs", False))
    if sub.show_changes and sub.format == "simplified":
        raise _bad("showChanges cannot be used with the keyValues format")
    sub.endpoint = _endpoint(raw.get("endpoint"))


def parse_subscription(doc: Any, terms: TermMap, context: Any, *, creating: bool) -> Subscription:
    """Validate a Subscription document and parse it; BadRequestData when it is wrong.

    ``creating``: the rules only a new subscription must meet (``expiresAt`` in the future).
    """
    if not isinstance(doc, dict):
        raise _bad("the body must be a JSON object")
    if doc.get("type") != "Subscription":
        raise _bad('type must be "Subscription"')
    sub = Subscription(check_uri(doc.get("id"), "id"), terms, context, Endpoint(""), doc=doc)
    entities = doc.get("entities")
    if entities is not None:
        if not isinstance(entities, list) or not entities:
            raise _bad("entities must be a non-empty array of EntitySelector objects")
        sub.entities = [_selector(e, terms) for e in entities]
    if doc.get("watchedAttributes") is not None:
        sub.watched = frozenset(_names(doc["watchedAttributes"], "watchedAttributes", terms))
    if not sub.entities and sub.watched is None:
        raise _bad("give entities, watchedAttributes or both")
    triggers = doc.get("notificationTrigger")
    if triggers is not None:
        if not isinstance(triggers, list) or not triggers or any(t not in TRIGGERS
                                                                 for t in triggers):
            raise _bad("notificationTrigger must be a non-empty array of " + ", ".join(TRIGGERS))
        expanded = set(triggers)
        if "entityUpdated" in expanded:  # 5.2.12: shorthand for the three attribute triggers
            expanded |= {"attributeCreated", "attributeUpdated", "attributeDeleted"}
        sub.triggers = frozenset(expanded)
    q_text = _str(doc, "q")
    if q_text is not None:
        sub.q = ql.parse_q(q_text, terms.expand)
    scope_text = _str(doc, "scopeQ")
    if scope_text is not None:
        sub.scope_q = ql.parse_scope_q(scope_text)
    geo = doc.get("geoQ")
    if geo is not None:
        if not isinstance(geo, dict):
            raise _bad("geoQ must be an object")
        coords = geo.get("coordinates")
        if not isinstance(geo.get("geometry"), str) or not isinstance(geo.get("georel"), str) \
                or not isinstance(coords, str | list):
            raise _bad("geoQ needs geometry, georel and coordinates")
        prop = geo.get("geoproperty")
        if prop is not None and not isinstance(prop, str):
            raise _bad("geoQ.geoproperty must be a string")
        sub.geo = ql.parse_geo(geo["geometry"], geo["georel"], coords, prop, terms.expand)
    sub.throttling = _number(doc, "throttling") or 0.0
    sub.time_interval = _number(doc, "timeInterval")
    if sub.time_interval is not None and (sub.watched is not None or sub.throttling):
        raise _bad("timeInterval cannot be combined with watchedAttributes or throttling")
    if sub.time_interval is not None and not sub.entities:
        raise _bad("a periodic subscription (timeInterval) needs entities")
    expires = doc.get("expiresAt")
    if expires is not None:
        sub.expires_at = utc_text(check_datetime(expires, "expiresAt"))
        if creating and sub.expires_at <= utc_text(datetime.now(UTC).isoformat()):
            raise _bad("expiresAt is in the past")
    if "isActive" in doc and not isinstance(doc["isActive"], bool):
        raise _bad("isActive must be true or false")
    sub.is_active = doc.get("isActive", True) is not False
    sub.lang = _str(doc, "lang")
    for key in ("subscriptionName", "description"):
        _str(doc, key)
    _notification(sub, doc.get("notification"), terms)
    return sub


def merge_fragment(current: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    """PATCH (5.8.2): members given replace the stored ones; ``notification`` merges one level
    deep (so changing only the endpoint keeps the format); JSON null removes a member."""
    out = dict(current)
    for key, value in fragment.items():
        if key in ("@context", "id") or key in READ_ONLY:
            continue
        if key == "notification" and isinstance(value, dict) and \
                isinstance(out.get("notification"), dict):
            merged = dict(out["notification"])
            for k, v in value.items():
                if k in READ_ONLY_NOTIFICATION:
                    continue
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            out["notification"] = merged
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def stored_doc(doc: dict[str, Any], sub_id: str, context: Any) -> dict[str, Any]:
    """What is kept: the client's members minus read-only ones, with id and jsonldContext."""
    out = {k: v for k, v in doc.items() if k not in READ_ONLY and k != "@context"}
    note = out.get("notification")
    if isinstance(note, dict):
        out["notification"] = {k: v for k, v in note.items() if k not in READ_ONLY_NOTIFICATION}
    out["id"] = sub_id
    out["jsonldContext"] = context
    return out
