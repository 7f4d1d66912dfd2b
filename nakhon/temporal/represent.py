"""Temporal representations (ETSI GS CIM 009 V1.8.1, clauses 4.5.7 – 4.5.9 and 4.5.19).

* normalized (4.5.7): each attribute is an array of its instances, oldest first, each with its
  ``instanceId``; ``format=concise`` drops what the concise form infers, as /entities does;
* temporalValues (4.5.9): per attribute (and datasetId) ``{"type", "values": [[value, time],
  …]}`` — ``objects`` for Relationships, ``languageMaps``, ``vocabs``, ``valueLists``,
  ``objectLists``, ``jsons`` for the other attribute types;
* aggregatedValues (4.5.19): per attribute (and datasetId) ``{"type", method: [[value, start,
  end], …]}`` for each asked method.

A deletion marker is an instance like the others whose value is NGSI-LD Null; its ``deletedAt``
is shown with ``options=sysAttrs`` or when it is the time property asked, and a deleted entity
shows ``deletedAt`` (with ``createdAt`` and ``modifiedAt``) under ``options=sysAttrs``.
"""

from __future__ import annotations

from typing import Any

from nakhon.broker import render
from nakhon.broker.model import VALUE_MEMBER, Instance
from nakhon.broker.render import RenderOptions
from nakhon.storage.history_base import AggregateRow, StoredInstance, is_marker
from nakhon.temporal.model import TemporalQuery, bucket_bounds, format_time, instance_id
from nakhon.temporal.service import TemporalEntity

_SIMPLIFIED_KEY = {
    "Property": "values",
    "GeoProperty": "values",
    "Relationship": "objects",
    "LanguageProperty": "languageMaps",
    "VocabProperty": "vocabs",
    "ListProperty": "valueLists",
    "ListRelationship": "objectLists",
    "JsonProperty": "jsons",
}


def render_temporal(
    item: TemporalEntity, query: TemporalQuery, compact: Any, opts: RenderOptions
) -> dict[str, Any]:
    """One temporal entity in the representation the query asks for."""
    entity = item.entity
    out: dict[str, Any] = {"id": entity.id}
    types = [compact(t) for t in entity.types]
    out["type"] = types[0] if len(types) == 1 else types
    if entity.scope is not None:
        out["scope"] = entity.scope[0] if len(entity.scope) == 1 else entity.scope
    if opts.sys_attrs:
        out["createdAt"] = entity.created_at
        out["modifiedAt"] = entity.modified_at
        if item.deleted_at is not None:
            out["deletedAt"] = item.deleted_at
    if query.representation == "aggregatedValues":
        for iri, rows in item.aggregates.items():
            kind = item.kinds.get(iri) or _kind(entity.attrs.get(iri))
            out[compact(iri)] = _aggregated(rows, query, kind)
        return out
    for iri, stored in item.instances.items():
        if query.representation == "temporalValues":
            out[compact(iri)] = _temporal_values(stored, query, compact, opts)
        else:
            show = opts.sys_attrs or query.timeproperty == "deletedAt"
            out[compact(iri)] = [_normalized(iri, s, compact, opts, show) for s in stored]
    return out


def _kind(current: list[Instance] | None) -> str:
    return str(current[0].get("type", "Property")) if current else "Property"


def _normalized(
    iri: str, stored: StoredInstance, compact: Any, opts: RenderOptions, show_deleted: bool
) -> Any:
    inst = stored.instance
    marker = is_marker(inst)
    if marker:
        inst = {k: v for k, v in inst.items() if k != "deletedAt"}
    rendered = render.render_attribute(iri, [inst], compact, opts)
    if marker and show_deleted:
        if not isinstance(rendered, dict):  # a concise bare value
            rendered = {"value": rendered}
        rendered = {**rendered, "deletedAt": stored.instance["deletedAt"]}
    if isinstance(rendered, dict):
        rendered = {**rendered, "instanceId": instance_id(stored.hid)}
    return rendered


def _time_of(stored: StoredInstance, query: TemporalQuery) -> str | None:
    member = stored.instance.get(query.timeproperty)
    if isinstance(member, str):
        return member
    return format_time(stored.time) if stored.time is not None else None


def _temporal_values(
    stored: list[StoredInstance], query: TemporalQuery, compact: Any, opts: RenderOptions
) -> Any:
    by_dataset: dict[str | None, list[StoredInstance]] = {}
    for s in stored:
        by_dataset.setdefault(s.instance.get("datasetId"), []).append(s)
    out: list[dict[str, Any]] = []
    for ds, items in by_dataset.items():
        kind = str(items[-1].instance.get("type", "Property"))
        pairs: list[list[Any]] = []
        for s in items:
            inst = s.instance
            member = VALUE_MEMBER.get(str(inst.get("type")), "value")
            value = inst.get(member)
            if member == "vocab":
                value = [compact(v) for v in value] if isinstance(value, list) else compact(value)
            elif member == "languageMap" and opts.lang:
                value = value.get(render.pick_language(value, opts.lang)) if value else value
            pairs.append([value, _time_of(s, query)])
        obj: dict[str, Any] = {"type": kind, _SIMPLIFIED_KEY.get(kind, "values"): pairs}
        if ds is not None:
            obj["datasetId"] = ds
        out.append(obj)
    return out[0] if len(out) == 1 else out


def _aggregated(rows: list[AggregateRow], query: TemporalQuery, kind: str) -> Any:
    buckets = query.buckets()
    window = query.window()
    by_dataset: dict[str | None, dict[str, list[list[Any]]]] = {}
    for row in rows:
        if buckets.whole:
            start = window.start or row.first
            end = window.end or row.last
        else:
            start, end = bucket_bounds(buckets, row.bucket)
        methods = by_dataset.setdefault(row.dataset_id, {m: [] for m in query.aggr_methods})
        start_text = format_time(start) if start else None  # once per bucket, not per method
        end_text = format_time(end) if end else None
        for method in query.aggr_methods:
            methods[method].append([row.values.get(method), start_text, end_text])
    out: list[dict[str, Any]] = []
    for ds, methods in by_dataset.items():
        obj: dict[str, Any] = {"type": kind, **methods}
        if ds is not None:
            obj["datasetId"] = ds
        out.append(obj)
    return out[0] if len(out) == 1 else out
