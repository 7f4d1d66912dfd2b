"""Entity normal form → the client's representation (ETSI GS CIM 009 V1.8.1, clause 4.5).

Formats: *normalized* (4.5.2), *concise* (4.5.3: ``type`` dropped wherever the concise parser
infers it back, so concise output is lossless) and *simplified* / keyValues (4.5.4), plus the
GeoJSON Feature/FeatureCollection wrappers (4.5.16/4.5.17). ``lang`` filtering (4.15) turns each
LanguageProperty into a Property with ``value`` and ``lang``.

The output shares user values with the entity (no deep copy, for speed): treat it as read-only.
The caller adds ``@context`` (body or Link header).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from nakhon.broker import model
from nakhon.broker.model import VALUE_MEMBER, Entity, Instance
from nakhon.broker.validate import infer_type, is_plain_value

Compact = Callable[[str], str]
Format = Literal["normalized", "concise", "simplified"]

_SYSTEM = ("createdAt", "modifiedAt")
_ENTITY_KEYS = {"@id": "id", "@type": "type"}


@dataclass(slots=True)
class RenderOptions:
    """How to render: format, system attributes, projections and language/dataset filters.

    ``attrs``, ``pick`` and ``omit`` hold expanded attribute IRIs; ``pick``/``omit`` may also
    hold the entity members ``"id"``, ``"type"``, ``"scope"``, ``"createdAt"``, ``"modifiedAt"``.
    ``lang`` is an Accept-Language style list (``"th,en;q=0.8,*;q=0.1"``). ``dataset_id``
    keeps only instances with those datasetIds (``"@none"`` = the default instance).
    """

    format: Format = "normalized"
    sys_attrs: bool = False
    attrs: set[str] | None = None
    pick: set[str] | None = None
    omit: set[str] | None = None
    lang: str | None = None
    geoproperty: str = model.LOCATION
    dataset_id: set[str] | None = None


def render_entity(entity: Entity, compact: Compact, opts: RenderOptions) -> dict[str, Any]:
    """One entity in the requested format, without ``@context``."""
    out: dict[str, Any] = {}
    if _keep("id", opts):
        out["id"] = entity.id
    if _keep("type", opts):
        out["type"] = _one_or_list([compact(t) for t in entity.types])
    if entity.scope is not None and _keep("scope", opts):
        out["scope"] = _one_or_list(entity.scope)
    if opts.sys_attrs:
        for key, stamp in (("createdAt", entity.created_at), ("modifiedAt", entity.modified_at)):
            if stamp and _keep(key, opts):
                out[key] = stamp
    for iri, instances in entity.attrs.items():
        if opts.attrs is not None and iri not in opts.attrs:
            continue
        if not _keep(iri, opts):
            continue
        rendered = render_attribute(iri, instances, compact, opts)
        if rendered is not None:
            out[compact(iri)] = rendered
    return out


def render_geojson_feature(entity: Entity, compact: Compact,
                           opts: RenderOptions) -> dict[str, Any]:
    """One entity as a GeoJSON Feature (clause 4.5.16).

    ``geometry`` is the value of ``opts.geoproperty`` (its default instance, else the first
    one) or ``null``; ``properties`` holds ``type`` and the attributes in ``opts.format``.
    """
    props = render_entity(entity, compact, opts)
    feature: dict[str, Any] = {}
    if "id" in props:
        feature["id"] = props.pop("id")
    feature["type"] = "Feature"
    feature["geometry"] = _geometry(entity, opts)
    feature["properties"] = props
    return feature


def render_geojson_collection(entities: Iterable[Entity], compact: Compact,
                              opts: RenderOptions) -> dict[str, Any]:
    """Entities as a GeoJSON FeatureCollection (clause 4.5.17)."""
    return {"type": "FeatureCollection",
            "features": [render_geojson_feature(e, compact, opts) for e in entities]}


def render_attribute(name_iri: str, instances: list[Instance], compact: Compact,
                     opts: RenderOptions) -> Any:
    """One attribute: an object (one instance) or an array (several) — or, simplified, its
    value (several instances: ``{"dataset": {"@none" | datasetId: value}}``).

    Returns ``None`` when the ``dataset_id`` filter leaves no instance.
    """
    if opts.dataset_id is not None:
        instances = [i for i in instances if i.get("datasetId", "@none") in opts.dataset_id]
    if not instances:
        return None
    if opts.format == "simplified":
        if len(instances) == 1:
            return _simplified(instances[0], compact, opts)
        return {"dataset": {i.get("datasetId", "@none"): _simplified(i, compact, opts)
                            for i in instances}}
    if len(instances) == 1:
        return _instance(name_iri, instances[0], compact, opts, bare_ok=True)
    # Inside an array a bare value would read back as a Property holding a list: never bare.
    return [_instance(name_iri, i, compact, opts, bare_ok=False) for i in instances]


def pick_language(language_map: dict[str, Any], lang: str) -> str:
    """The languageMap key that best matches an Accept-Language style ``lang`` (clause 4.15).

    Ranges are tried by descending ``q`` (then order): exact tag, a tag under the range
    (``th`` → ``th-TH``), then the range truncated (``th-TH`` → ``th``); ``*`` takes the first
    entry. Without a match: ``@none`` if present, else the first entry.
    """
    ranges: list[tuple[float, int, str]] = []
    for pos, part in enumerate(lang.split(",")):
        rng, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if rng and q > 0:
            ranges.append((-q, pos, rng.strip().lower()))
    keys = list(language_map)
    lowered = {k.lower(): k for k in keys}
    for _, _, rng in sorted(ranges):
        if rng == "*":
            return keys[0]
        if rng in lowered:
            return lowered[rng]
        under = [k for k in keys if k.lower().startswith(rng + "-")]
        if under:
            return under[0]
        while "-" in rng:
            rng = rng.rsplit("-", 1)[0]
            if rng in lowered:
                return lowered[rng]
    return "@none" if "@none" in language_map else keys[0]


# --- internals ---------------------------------------------------------------------------


def _keep(member: str, opts: RenderOptions) -> bool:
    # "@id"/"@type" are accepted as aliases of "id"/"type" in pick/omit.
    names = {member, "@" + member} if member in ("id", "type") else {member}
    if opts.pick is not None and not names & opts.pick:
        return False
    return opts.omit is None or not names & opts.omit


def _one_or_list(items: list[str]) -> str | list[str]:
    return items[0] if len(items) == 1 else list(items)


def _geometry(entity: Entity, opts: RenderOptions) -> Any:
    instances = entity.attrs.get(opts.geoproperty) or []
    if opts.dataset_id is not None:
        instances = [i for i in instances if i.get("datasetId", "@none") in opts.dataset_id]
    for inst in instances:
        if inst.get("type") == "GeoProperty":
            return inst["value"]
    return None


def _lang_filtered(inst: Instance, opts: RenderOptions) -> Instance:
    """A LanguageProperty seen through ``lang``: a Property with ``value`` and ``lang``."""
    if opts.lang is None or inst["type"] != "LanguageProperty":
        return inst
    lmap = inst["languageMap"]
    tag = pick_language(lmap, opts.lang)
    out: Instance = {"type": "Property", "value": lmap[tag], "lang": tag}
    out.update((k, v) for k, v in inst.items() if k not in ("type", "languageMap"))
    return out


def _compact_iris(value: Any, compact: Compact) -> Any:
    return [compact(v) for v in value] if isinstance(value, list) else compact(value)


def _instance(name_iri: str, inst: Instance, compact: Compact, opts: RenderOptions,
              *, bare_ok: bool) -> Any:
    inst = _lang_filtered(inst, opts)
    out: dict[str, Any] = {}
    for key, val in inst.items():
        if key in _SYSTEM and not opts.sys_attrs:
            continue
        if key in ("vocab", "objectType"):
            out[key] = _compact_iris(val, compact)
        elif key in model.META_MEMBERS or key == "lang":
            out[key] = val
        else:
            # Sub-attribute: an expanded IRI → one nested instance.
            out[compact(key)] = _instance(key, val, compact, opts, bare_ok=True)
    if opts.format == "concise":
        return _concise(name_iri, out, bare_ok)
    return out


def _concise(name_iri: str, out: dict[str, Any], bare_ok: bool) -> Any:
    """Drop ``type`` (and the wrapper) only where the concise parser infers them back."""
    atype = out["type"]
    rest = {k: v for k, v in out.items() if k != "type"}
    if atype == "Property" and bare_ok and list(rest) == ["value"] and is_plain_value(
            rest["value"]):
        return rest["value"]
    if infer_type(name_iri, rest) == atype:
        return rest
    return out


def _simplified(inst: Instance, compact: Compact, opts: RenderOptions) -> Any:
    inst = _lang_filtered(inst, opts)
    atype = inst["type"]
    value = inst[VALUE_MEMBER[atype]]
    if atype == "VocabProperty":
        return _compact_iris(value, compact)
    if atype == "ListRelationship":
        return [item["object"] for item in value]
    # JSON-LD reads a bare map as a node, so these keep their member name (clause 4.5.4).
    if atype == "LanguageProperty":
        return {"languageMap": value}
    if atype == "JsonProperty":
        return {"json": value}
    return value
