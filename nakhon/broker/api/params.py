"""Query parameters (and the POST Query body) → EntityQuery and RenderOptions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from nakhon.broker import query as ql
from nakhon.broker.jsonld import TermMap
from nakhon.broker.model import LOCATION
from nakhon.broker.query.regex import portable_pattern
from nakhon.broker.render import RenderOptions
from nakhon.core.errors import BadRequestData
from nakhon.storage.base import EntityQuery

_OPTIONS = {
    "keyValues",
    "concise",
    "sysAttrs",
    "normalized",
    "simplified",
    "noOverwrite",
    "replace",
    "update",
}
_MAX_INT = 2**31 - 1  # SQL engines take 64-bit integers; nobody pages past two billion
_FORMATS = {"normalized", "concise", "simplified", "keyValues"}


def split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    if any(not v for v in items):
        raise BadRequestData(f"Empty item in list {value!r}.")
    return items


def options_of(params: Mapping[str, str]) -> set[str]:
    """The ``options`` parameter as a set, rejecting unknown options."""
    opts = set(split_list(params.get("options")) or [])
    unknown = opts - _OPTIONS
    if unknown:
        raise BadRequestData(f"Unknown options: {', '.join(sorted(unknown))}.")
    return opts


def int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestData(f"{name} must be an integer, got {raw!r}.") from None
    if value < 0:
        raise BadRequestData(f"{name} must not be negative.")
    if value > _MAX_INT:
        raise BadRequestData(f"{name} must be at most {_MAX_INT}.")
    return value


def bool_param(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw in ("true", "false"):
        return raw == "true"
    raise BadRequestData(f"{name} must be true or false, got {raw!r}.")


def render_options(params: Mapping[str, str], terms: TermMap) -> RenderOptions:
    """Representation choices: format/options, attrs, pick, omit, lang, geometryProperty."""
    opts = options_of(params)
    fmt = params.get("format")
    if fmt is not None and fmt not in _FORMATS:
        raise BadRequestData(f"Unknown format {fmt!r}.")
    chosen = "normalized"
    if fmt in ("simplified", "keyValues") or {"keyValues", "simplified"} & opts:
        chosen = "simplified"
    elif fmt == "concise" or "concise" in opts:
        chosen = "concise"
    attrs = _expand_names(params.get("attrs"), terms)
    pick = _expand_names(params.get("pick"), terms)
    omit = _expand_names(params.get("omit"), terms)
    if pick is not None and omit is not None:
        raise BadRequestData("pick and omit cannot be used together.")
    geoprop = params.get("geometryProperty")
    return RenderOptions(
        format=chosen,  # type: ignore[arg-type]
        sys_attrs="sysAttrs" in opts,
        attrs=attrs,
        pick=pick,
        omit=omit,
        lang=params.get("lang"),
        geoproperty=terms.expand(geoprop) if geoprop else LOCATION,
    )


def _expand_names(value: str | None, terms: TermMap) -> set[str] | None:
    names = split_list(value)
    if names is None:
        return None
    return {n if n in ("id", "type") else terms.expand(n) for n in names}


def entity_query(
    params: Mapping[str, str], terms: TermMap, *, default_limit: int, require_filter: bool = True
) -> EntityQuery:
    """An EntityQuery from GET /entities parameters."""
    ids = split_list(params.get("id"))
    id_pattern = params.get("idPattern")
    if id_pattern is not None:
        portable_pattern(id_pattern, "idPattern")
    type_text = params.get("type")
    type_expr = ql.parse_type_selection(type_text, terms.expand) if type_text else None
    attrs = split_list(params.get("attrs"))
    q = ql.parse_q(params["q"], terms.expand) if params.get("q") else None
    scope_q = ql.parse_scope_q(params["scopeQ"]) if params.get("scopeQ") else None
    geo = None
    if any(params.get(k) for k in ("geometry", "georel", "coordinates")):
        geo = geo_query(
            params.get("geometry"),
            params.get("georel"),
            params.get("coordinates"),
            params.get("geoproperty"),
            terms,
        )
    unfiltered = not any((ids, id_pattern, type_expr, attrs, q, geo, scope_q))
    if require_filter and unfiltered and params.get("local") != "true":
        raise BadRequestData(
            "Give at least one of id, idPattern, type, attrs, q, geometry or scopeQ."
        )
    return EntityQuery(
        ids=ids,
        id_pattern=id_pattern,
        type_expr=type_expr,
        attrs=[terms.expand(a) for a in attrs] if attrs else None,
        q=q,
        geo=geo,
        scope_q=scope_q,
        limit=int_param(params, "limit", default_limit),
        offset=int_param(params, "offset", 0),
        count=bool_param(params, "count"),
    )


def geo_query(
    geometry: str | None,
    georel: str | None,
    coordinates: Any,
    geoproperty: str | None,
    terms: TermMap,
) -> Any:
    if not geometry or not georel or coordinates in (None, ""):
        raise BadRequestData("A geo-query needs geometry, georel and coordinates.")
    return ql.parse_geo(geometry, georel, coordinates, geoproperty, terms.expand)


def query_from_body(
    body: Any, params: Mapping[str, str], terms: TermMap, *, default_limit: int
) -> tuple[EntityQuery, dict[str, str]]:
    """POST /entityOperations/query: the Query body plus paging parameters in the URL."""
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('The body must be a Query object with "type": "Query".')
    merged: dict[str, str] = dict(params)
    entities = body.get("entities")
    if entities is not None:
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise BadRequestData("Query.entities must be an array of EntitySelector objects.")
        _selectors_into(entities, merged)
    for key in ("q", "scopeQ", "lang"):
        if key in body:
            if not isinstance(body[key], str):
                raise BadRequestData(f"Query.{key} must be a string.")
            merged[key] = body[key]
    for key in ("attrs", "pick", "omit"):
        if key in body:
            value = body[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise BadRequestData(f"Query.{key} must be an array of strings.")
            merged[key] = ",".join(value)
    geo_q = body.get("geoQ")
    if geo_q is not None:
        if not isinstance(geo_q, dict):
            raise BadRequestData("Query.geoQ must be an object.")
        coords = geo_q.get("coordinates")
        merged["geometry"] = str(geo_q.get("geometry") or "")
        merged["georel"] = str(geo_q.get("georel") or "")
        merged["coordinates"] = coords if isinstance(coords, str) else orjson.dumps(coords).decode()
        if geo_q.get("geoproperty"):
            merged["geoproperty"] = str(geo_q["geoproperty"])
    return entity_query(merged, terms, default_limit=default_limit), merged


def _selectors_into(selectors: list[dict[str, Any]], merged: dict[str, str]) -> None:
    ids: list[str] = []
    types: list[str] = []
    patterns: list[str] = []
    for sel in selectors:
        for key, bucket in (("id", ids), ("type", types), ("idPattern", patterns)):
            value = sel.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise BadRequestData(f"EntitySelector.{key} must be a string.")
            bucket.append(value)
    if ids:
        merged["id"] = ",".join(ids)
    if types:
        merged["type"] = ",".join(types)
    if patterns:
        if len(patterns) > 1:
            raise BadRequestData("Only one idPattern per query is supported.")
        merged["idPattern"] = patterns[0]
