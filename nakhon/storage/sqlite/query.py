"""EntityQuery → SQLite SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nakhon.broker import query as ql
from nakhon.broker.model import Entity
from nakhon.storage.base import EntityQuery

_COLUMNS = "e.id, e.types, e.scopes, e.created_at, e.modified_at, e.doc"


@dataclass(slots=True)
class BuiltQuery:
    select_page: str
    page_params: list[Any]
    select_count: str
    select_all: str
    params: list[Any]


def build_query(tenant: str, query: EntityQuery) -> BuiltQuery:
    """Compile an EntityQuery to SQL over ``entities e`` (plus the type and R*Tree indexes)."""
    params: list[Any] = []
    source = "entities e"
    where: list[str] = []
    single = _single_type(query.type_expr)
    if single is not None:
        # One type: walk the (tenant, type, id) index in id order, so a page of 20 reads 20 rows.
        source = "entity_types t JOIN entities e ON e.pk = t.entity_pk"
        where.append("t.tenant = ? AND t.type = ?")
        params += [tenant, single]
        order = "t.id"
    else:
        where.append("e.tenant = ?")
        params.append(tenant)
        order = "e.id"
        if query.type_expr is not None:
            where.append(ql.compile_types(query.type_expr, "sqlite", params))
    if query.ids is not None:
        # An empty id list selects nothing, not everything.
        where.append(f"e.id IN ({','.join('?' * len(query.ids))})" if query.ids else "0")
        params += list(query.ids)
    if query.id_pattern:
        where.append("regexp(?, e.id)")
        params.append(query.id_pattern)
    if query.attrs:
        marks = ",".join("?" * len(query.attrs))
        where.append(
            f"EXISTS (SELECT 1 FROM json_each(e.doc, '$.attrs') a WHERE a.key IN ({marks}))"
        )
        params += list(query.attrs)
    if query.q is not None:
        where.append(ql.compile_q(query.q, "sqlite", params, fast_column="e.qv"))
    if query.scope_q is not None:
        where.append(ql.compile_scope(query.scope_q, "sqlite", params))
    if query.geo is not None:
        where.append(_geo_candidates(query.geo, params))
    clause = " AND ".join(f"({w})" for w in where)
    base = f"FROM {source} WHERE {clause}"
    page = f"SELECT {_COLUMNS} {base} ORDER BY {order} LIMIT ? OFFSET ?"
    if single is not None and len(where) == 1:
        # Type alone: find the page in the covering (tenant, type, id) index first and read
        # only its 20 rows, so offset 100,000 skips index entries, not table rows.
        page = (
            f"SELECT {_COLUMNS} FROM entities e WHERE e.pk IN (SELECT t.entity_pk FROM"
            f" entity_types t WHERE {clause} ORDER BY t.id LIMIT ? OFFSET ?) ORDER BY e.id"
        )
    return BuiltQuery(
        select_page=page,
        page_params=[*params, query.limit, query.offset],
        select_count=f"SELECT count(*) {base}",
        select_all=f"SELECT {_COLUMNS} {base} ORDER BY {order}",
        params=params,
    )


def _single_type(expr: Any) -> str | None:
    """The type, when the selection is just one type (a bare leaf of the type AST)."""
    return expr if isinstance(expr, str) else None


def _geo_candidates(geo: Any, params: list[Any]) -> str:
    bbox = geo.search_bbox()
    if bbox is None:
        params.append(geo.geoproperty)
        return "e.pk IN (SELECT g.entity_pk FROM geo g WHERE g.attr = ?)"
    minx, miny, maxx, maxy = bbox
    params += [geo.geoproperty, maxx, minx, maxy, miny]
    return (
        "e.pk IN (SELECT g.entity_pk FROM geo g JOIN geo_rtree r ON r.gid = g.gid"
        " WHERE g.attr = ? AND r.minx <= ? AND r.maxx >= ? AND r.miny <= ? AND r.maxy >= ?)"
    )


def filter_geo(entities: list[Entity], geo: Any) -> list[Entity]:
    """The exact geo-relation, checked with Shapely on the R*Tree's candidates."""
    return [e for e in entities if ql.match_geo(geo, e)]
