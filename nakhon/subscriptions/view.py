"""A subscription as a client sees it (5.2.12), compacted with the *client's* @context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nakhon.broker import query as ql
from nakhon.broker.query.geo import GeoQuery
from nakhon.subscriptions.matcher import Active
from nakhon.subscriptions.model import Subscription
from nakhon.subscriptions.store import Stats

Compact = Callable[[str], str]
_CORE_GEO = {"https://uri.etsi.org/ngsi-ld/location": "location",
             "https://uri.etsi.org/ngsi-ld/observationSpace": "observationSpace",
             "https://uri.etsi.org/ngsi-ld/operationSpace": "operationSpace"}


def _names(iris: Any, compact: Compact) -> list[str]:
    return sorted(compact(i) for i in iris)


def _geo(sub: Subscription, geo: GeoQuery, compact: Compact) -> dict[str, Any]:
    raw = sub.doc.get("geoQ") or {}
    out: dict[str, Any] = {"geometry": raw.get("geometry"), "coordinates": raw.get("coordinates"),
                           "georel": raw.get("georel")}
    out["geoproperty"] = _CORE_GEO.get(geo.geoproperty) or compact(geo.geoproperty)
    return out


def render_subscription(entry: Active, stats: Stats, compact: Compact, now: str,
                        *, sys_attrs: bool = False) -> dict[str, Any]:
    sub = entry.sub
    doc = sub.doc
    out: dict[str, Any] = {"id": sub.id, "type": "Subscription"}
    for key in ("subscriptionName", "description"):
        if doc.get(key) is not None:
            out[key] = doc[key]
    if sub.entities:
        entities = []
        for sel in sub.entities:
            item: dict[str, Any] = {}
            if sel.id is not None:
                item["id"] = sel.id
            if sel.id_pattern is not None:
                item["idPattern"] = sel.id_pattern.pattern
            if sel.types is not None:
                item["type"] = ql.unparse_types(sel.types, compact)
            entities.append(item)
        out["entities"] = entities
    if sub.watched is not None:
        out["watchedAttributes"] = _names(sub.watched, compact)
    if doc.get("notificationTrigger") is not None:
        out["notificationTrigger"] = doc["notificationTrigger"]
    if sub.q is not None:
        out["q"] = ql.unparse_q(sub.q, compact)
    if sub.geo is not None:
        out["geoQ"] = _geo(sub, sub.geo, compact)
    if sub.scope_q is not None:
        out["scopeQ"] = ql.unparse_scope_q(sub.scope_q)
    for key in ("throttling", "timeInterval", "expiresAt", "lang"):
        if doc.get(key) is not None:
            out[key] = doc[key]
    out["isActive"] = sub.is_active
    out["status"] = sub.status(now)
    out["notification"] = _notification(sub, stats, compact)
    out["jsonldContext"] = sub.context
    if sys_attrs:
        out["createdAt"] = entry.created_at
        out["modifiedAt"] = entry.modified_at
    return out


def _notification(sub: Subscription, stats: Stats, compact: Compact) -> dict[str, Any]:
    endpoint = sub.endpoint
    ep: dict[str, Any] = {"uri": endpoint.uri, "accept": endpoint.accept}
    if endpoint.timeout_ms is not None:
        ep["timeout"] = endpoint.timeout_ms
    if endpoint.receiver_info:
        ep["receiverInfo"] = [{"key": k, "value": v} for k, v in endpoint.receiver_info]
    if endpoint.notifier_info:
        ep["notifierInfo"] = [{"key": k, "value": v} for k, v in endpoint.notifier_info]
    note: dict[str, Any] = {}
    if sub.attributes is not None:
        note["attributes"] = _names(sub.attributes, compact)
    note["format"] = "keyValues" if sub.format == "simplified" else sub.format
    note["showChanges"] = sub.show_changes
    note["sysAttrs"] = sub.sys_attrs
    note["endpoint"] = ep
    status = stats.status()
    if status is not None:
        note["status"] = status
    note["timesSent"] = stats.times_sent
    note["timesFailed"] = stats.times_failed
    for key, value in (("lastNotification", stats.last_notification),
                       ("lastSuccess", stats.last_success),
                       ("lastFailure", stats.last_failure)):
        if value is not None:
            note[key] = value
    return note
