"""EntityQuery → SQL for PostgreSQL.

The WHERE clause is built from bound parameters only ($N placeholders appended to one list).
``type``, ``q`` and ``scopeQ`` ASTs are compiled by ``nakhon.broker.query`` (dialect
``"postgres"``, columns ``e.id``, ``e.types``, ``e.scopes``, ``e.doc``); geo-queries become an
EXISTS over ``entity_geo`` so an entity with several GeoProperty instances matches when any
instance does.

Paging is a *deferred join*: the inner query picks the page's primary keys in id order (an
index-only scan of ``(tenant, id) INCLUDE (pk)`` when no document filter applies), the outer one
fetches only those rows. Rows skipped by OFFSET are then never read from the heap, which keeps
deep pages (offset 100,000+) cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import shapely

from nakhon.broker.model import LOCATION
from nakhon.core.errors import BadRequestData, OperationNotSupported
from nakhon.storage.base import EntityQuery

from .codec import ENTITY_COLUMNS

# georel → PostGIS predicate, entity geometry first (NGSI-LD: "the entity's geo-property
# <georel> the query geometry").
_TOPOLOGICAL = {
    "within": "ST_Within",
    "contains": "ST_Contains",
    "intersects": "ST_Intersects",
    "disjoint": "ST_Disjoint",
    "equals": "ST_Equals",
    "overlaps": "ST_Overlaps",
}


@dataclass(slots=True)
class Compiled:
    """SQL text and its bound parameters."""

    sql: str
    params: list[Any]


# Where each compiler lives if the package does not re-export it.
_COMPILER_MODULES = {"compile_types": "typesel", "compile_q": "q_sql", "compile_scope": "scope"}


def _compiler(name: str) -> Any:
    """A compiler function from nakhon.broker.query (looked up when first needed).

    Looked up lazily so the storage package imports without the query package's heavier
    modules, and so the engine degrades to OperationNotSupported rather than failing to import.
    """
    import importlib

    import nakhon.broker.query as bq

    fn = getattr(bq, name, None)
    if fn is None:
        try:
            module = importlib.import_module(f"nakhon.broker.query.{_COMPILER_MODULES[name]}")
        except ImportError:
            module = None
        fn = getattr(module, name, None)
    if fn is None:
        raise OperationNotSupported(f"{name} is not available in this build")
    return fn


def _bind(params: list[Any], value: Any) -> str:
    params.append(value)
    return f"${len(params)}"


def where_clause(tenant: str, query: EntityQuery, params: list[Any]) -> str:
    """The WHERE conditions over alias ``e`` (appends to ``params``)."""
    conds = [f"e.tenant = {_bind(params, tenant)}"]
    if query.ids is not None:
        conds.append(f"e.id = ANY({_bind(params, list(query.ids))}::text[])")
    if query.id_pattern is not None:
        conds.append(f"e.id ~ {_bind(params, query.id_pattern)}")
    if query.type_expr is not None:
        conds.append("(" + _compiler("compile_types")(query.type_expr, "postgres", params) + ")")
    if query.attrs:
        conds.append(f"(e.doc -> 'attrs') ?| {_bind(params, list(query.attrs))}::text[]")
    if query.q is not None:
        conds.append("(" + _compiler("compile_q")(query.q, "postgres", params) + ")")
    if query.scope_q is not None:
        conds.append("(" + _compiler("compile_scope")(query.scope_q, "postgres", params) + ")")
    if query.geo is not None:
        conds.append(geo_condition(query.geo, params))
    return " AND ".join(conds)


def geo_condition(geo: Any, params: list[Any]) -> str:
    """EXISTS over entity_geo for one GeoQuery (duck-typed: see nakhon.broker.query)."""
    geometry = geo.geometry
    if isinstance(geometry, dict):  # tolerate GeoJSON as well as shapely objects
        geometry = shapely.geometry.shape(geometry)
    wkb = bytes(shapely.to_wkb(geometry))
    attr = getattr(geo, "geoproperty", None) or LOCATION
    georel = str(geo.georel).split(";", 1)[0]
    conds = [f"g.attr = {_bind(params, attr)}"]
    qgeom = f"ST_GeomFromWKB({_bind(params, wkb)}, 4326)"
    if georel == "near":
        max_d = getattr(geo, "max_distance", None)
        min_d = getattr(geo, "min_distance", None)
        if max_d is None and min_d is None:
            raise BadRequestData("georel near needs maxDistance or minDistance")
        # geography: distances in metres on the WGS 84 spheroid; the expression index
        # entity_geo_geog serves ST_DWithin on it.
        if max_d is not None:
            conds.append(
                f"ST_DWithin(g.geom::geography, {qgeom}::geography, {_bind(params, float(max_d))})"
            )
        if min_d is not None:
            conds.append(
                f"NOT ST_DWithin(g.geom::geography, {qgeom}::geography,"
                f" {_bind(params, float(min_d))})"
            )
    elif georel in _TOPOLOGICAL:
        conds.append(f"{_TOPOLOGICAL[georel]}(g.geom, {qgeom})")
    else:
        raise BadRequestData(f"Unknown georel: {geo.georel}")
    return (
        "EXISTS (SELECT 1 FROM entity_geo g WHERE g.entity_pk = e.pk AND "
        + " AND ".join(conds)
        + ")"
    )


def page_sql(tenant: str, query: EntityQuery) -> Compiled:
    """The page of matching entities, ordered by id (deferred join, see module docstring)."""
    params: list[Any] = []
    where = where_clause(tenant, query, params)
    limit = _bind(params, int(query.limit))
    offset = _bind(params, int(query.offset))
    sql = (
        f"SELECT {ENTITY_COLUMNS} FROM ("
        f"SELECT e.pk, e.id FROM entities e WHERE {where}"
        f" ORDER BY e.id LIMIT {limit} OFFSET {offset}"
        f") AS p JOIN entities e ON e.pk = p.pk ORDER BY p.id"
    )
    return Compiled(sql, params)


def count_sql(tenant: str, query: EntityQuery) -> Compiled:
    params: list[Any] = []
    where = where_clause(tenant, query, params)
    return Compiled(f"SELECT count(*) FROM entities e WHERE {where}", params)


# list_types: entity count per type, then the distinct (type, attribute) pairs.
TYPE_COUNTS_SQL = """
SELECT t.type, count(*) AS n
FROM entities e CROSS JOIN LATERAL unnest(e.types) AS t(type)
WHERE e.tenant = $1
GROUP BY t.type
"""

TYPE_ATTRS_SQL = """
SELECT DISTINCT t.type, k.attr
FROM entities e
CROSS JOIN LATERAL unnest(e.types) AS t(type)
CROSS JOIN LATERAL jsonb_object_keys(e.doc -> 'attrs') AS k(attr)
WHERE e.tenant = $1
"""

# list_attributes: per attribute, the entities having it and the attribute types used.
ATTR_KINDS_SQL = """
SELECT a.attr, count(DISTINCT e.pk) AS n, array_agg(DISTINCT i.inst ->> 'type') AS kinds
FROM entities e
CROSS JOIN LATERAL jsonb_each(e.doc -> 'attrs') AS a(attr, instances)
CROSS JOIN LATERAL jsonb_array_elements(a.instances) AS i(inst)
WHERE e.tenant = $1
GROUP BY a.attr
"""
