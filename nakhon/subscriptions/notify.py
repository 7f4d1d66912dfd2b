"""Notification bodies (5.3.1) from outbox payloads, rendered for one subscription.

Rendering happens at delivery, not in the write transaction: the writer only serialises the
change once (``change.ChangeInfo.payload``); format, projection, ``lang``, ``sysAttrs``,
``showChanges`` and the subscription's @context are applied here.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from nakhon.broker import render
from nakhon.broker.jsonld import CORE_CONTEXT_URL
from nakhon.broker.model import VALUE_MEMBER, Entity, Instance
from nakhon.subscriptions.model import Subscription

NOTIFICATION_NS = uuid.UUID("4b1e5a56-0f6f-4c59-9f5e-6e616b686f6e")
_NS_BYTES = NOTIFICATION_NS.bytes
NGSI_LD_NULL = "urn:ngsi-ld:null"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
# showChanges (5.2.14): the member that carries the value before the change, by attribute type.
_PREVIOUS = {
    "Property": "previousValue",
    "GeoProperty": "previousValue",
    "Relationship": "previousObject",
    "LanguageProperty": "previousLanguageMap",
    "VocabProperty": "previousVocab",
    "ListProperty": "previousValueList",
    "ListRelationship": "previousObjectList",
    "JsonProperty": "previousJson",
}


_second: list[Any] = [-1, ""]  # the last whole second seen by notified_at, and its text


def notified_at() -> str:
    """Now as NGSI-LD DateTime text (UTC, milliseconds): ``rows.utc_now`` without its
    strftime per call (one per second instead), for a value taken once per notification."""
    t = time.time()
    sec = int(t)
    if sec != _second[0]:
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        _second[0] = sec
    return f"{_second[1]}{int((t - sec) * 1000):03d}Z"


def notification_id(sub_pk: int, seq: int, created_at: str, index: int | None = None) -> str:
    """Stable per change of an outbox row, so a receiver can drop a redelivered duplicate
    (at-least-once). ``index``: the change's place in a batch row (None: a one-change row).
    A notification carrying several changes takes the id of its first one."""
    at = seq if index is None else f"{seq}.{index}"
    # uuid.uuid5, without its UUID object: the same text at a third of the cost.
    digest = bytearray(hashlib.sha1(_NS_BYTES + f"{sub_pk}:{at}:{created_at}".encode()).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"urn:ngsi-ld:Notification:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def headers(sub: Subscription, tenant: str) -> list[tuple[str, str]]:
    """The headers of every notification of ``sub`` (MQTT: the message's ``metadata``)."""
    accept = sub.endpoint.accept
    out = [("Content-Type", accept)]
    if accept == "application/json":
        url = sub.terms.link_url if isinstance(sub.context, str | list) else None
        out.append(("Link", f'<{url or CORE_CONTEXT_URL}>; rel="{CONTEXT_REL}";'
                            ' type="application/ld+json"'))
    if tenant:
        out.append(("NGSILD-Tenant", tenant))
    out.extend(sub.endpoint.receiver_info)
    return out


def options(sub: Subscription) -> render.RenderOptions:
    return render.RenderOptions(
        format=sub.format, sys_attrs=sub.sys_attrs, attrs=sub.attributes, lang=sub.lang
    )


def render_change(sub: Subscription, doc: dict[str, Any],
                  opts: render.RenderOptions | None = None) -> dict[str, Any]:
    """One changed entity as the subscription wants it (``opts``: ``options(sub)``, when the
    caller keeps it)."""
    compact = sub.terms.compact
    types = doc["types"]
    if "deletedAt" in doc:  # entityDeleted: id, type and deletedAt (5.2.12, 4.8)
        out: dict[str, Any] = {
            "id": doc["id"],
            "type": compact(types[0]) if len(types) == 1 else [compact(t) for t in types],
            "deletedAt": doc["deletedAt"],
        }
        return out
    entity = Entity(doc["id"], types, doc["attrs"], doc.get("scope"), doc.get("createdAt", ""),
                    doc.get("modifiedAt", ""))
    if opts is None:
        opts = options(sub)
    out = render.render_entity(entity, compact, opts)
    wanted = sub.attributes
    for iri in doc.get("deletedAttrs", ()):
        if wanted is not None and iri not in wanted:
            continue
        # attributeDeleted: the attribute with the NGSI-LD Null value (4.5.x) and deletedAt.
        if sub.format == "simplified":
            out[compact(iri)] = NGSI_LD_NULL
        else:
            out[compact(iri)] = {"type": "Property", "value": NGSI_LD_NULL,
                                 "deletedAt": doc.get("modifiedAt", "")}
    if sub.show_changes:
        _show_changes(out, doc.get("previous") or {}, compact, opts, wanted)
    return out


def _show_changes(out: dict[str, Any], previous: dict[str, list[Instance]], compact: Any,
                  opts: render.RenderOptions, wanted: set[str] | None) -> None:
    for iri, instances in previous.items():
        if wanted is not None and iri not in wanted:
            continue
        name = compact(iri)
        current = out.get(name)
        old = next((i for i in instances if "datasetId" not in i), instances[0] if instances
                   else None)
        if old is None or current is None or isinstance(current, list):
            continue  # several instances: previous values are not given (documented)
        if not isinstance(current, dict):
            # concise left a bare value: give the attribute its object form to add a member.
            current = {"value": current}
            out[name] = current
        member = _PREVIOUS.get(old.get("type", "Property"), "previousValue")
        value = old.get(VALUE_MEMBER.get(old.get("type", "Property"), "value"))
        if old.get("type") == "VocabProperty":
            value = [compact(v) for v in value] if isinstance(value, list) else compact(value)
        current[member] = value


def body(sub: Subscription, parts: Sequence[bytes], notification_id: str,
         notified_at: str) -> bytes:
    """The Notification JSON around already encoded entities (``parts``, in order; GeoJSON
    Features when the endpoint accepts GeoJSON): the entities are joined, not re-encoded."""
    accept = sub.endpoint.accept
    note: dict[str, Any] = {
        "id": notification_id,
        "type": "Notification",
        "subscriptionId": sub.id,
        "notifiedAt": notified_at,
    }
    if accept in ("application/ld+json", "application/geo+json"):
        note["@context"] = sub.context
    data = b"[%s]" % b",".join(parts)
    if accept == "application/geo+json":
        data = b'{"type":"FeatureCollection","features":%s}' % data
    return b'%s,"data":%s}' % (orjson.dumps(note)[:-1], data)


def encode(sub: Subscription, entities: Sequence[dict[str, Any]]) -> list[bytes]:
    """Rendered entities encoded for :func:`body` (as GeoJSON Features when asked)."""
    geo = sub.endpoint.accept == "application/geo+json"
    return [orjson.dumps(feature(e) if geo else e) for e in entities]


def feature(entity: dict[str, Any]) -> dict[str, Any]:
    """A rendered entity as a GeoJSON Feature (``location`` as its geometry)."""
    props = {k: v for k, v in entity.items() if k != "id"}
    location = props.get("location")
    geometry = None
    if isinstance(location, dict):
        geometry = location.get("value", location if "coordinates" in location else None)
    return {"id": entity.get("id"), "type": "Feature", "geometry": geometry,
            "properties": props}
