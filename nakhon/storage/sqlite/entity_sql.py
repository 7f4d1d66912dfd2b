"""Entity side rows of the SQLite writer: types, scopes and the spatial index (``geo`` and its
R-tree), written in bulk inside the writer's transaction."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
import shapely.geometry

from nakhon.broker.model import Entity
from nakhon.storage.rows import geo_values


def dump_scope(scope: list[str] | None) -> str | None:
    return orjson.dumps(scope).decode() if scope is not None else None


def insert_types(
    conn: sqlite3.Connection, pk: int, tenant: str, entity_id: str, types: list[str]
) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO entity_types (tenant, type, id, entity_pk) VALUES (?, ?, ?, ?)",
        [(tenant, t, entity_id, pk) for t in types],
    )


def insert_geo(conn: sqlite3.Connection, items: list[tuple[int, Entity]]) -> None:
    """Index the GeoProperty values of entities (their old rows already deleted).

    ``gid`` is assigned here (max + 1, as SQLite would; single writer in a transaction) so the
    geo and R-tree rows go in with one ``executemany`` each rather than two statements per
    value."""
    geo: list[tuple[int, int, str, str]] = []
    boxes: list[tuple[int, float, float, float, float]] = []
    gid: int | None = None
    for pk, entity in items:
        for attr, geometry in geo_values(entity):
            try:
                minx, miny, maxx, maxy = _bounds(geometry)
            except Exception:  # validated at the edge; an unindexable value is not indexed
                continue
            if gid is None:
                gid = conn.execute("SELECT max(gid) FROM geo").fetchone()[0] or 0
            gid += 1
            geo.append((gid, pk, attr, orjson.dumps(geometry).decode()))
            boxes.append((gid, minx, maxx, miny, maxy))
    if geo:
        conn.executemany("INSERT INTO geo (gid, entity_pk, attr, geojson) VALUES (?, ?, ?, ?)", geo)
        conn.executemany(
            "INSERT INTO geo_rtree (gid, minx, maxx, miny, maxy) VALUES (?, ?, ?, ?, ?)", boxes
        )


def _bounds(geometry: dict[str, Any]) -> tuple[float, float, float, float]:
    """Bounding box of a GeoJSON geometry; points (most city sensors) skip Shapely."""
    if geometry.get("type") == "Point":
        x, y = geometry["coordinates"][:2]
        return float(x), float(y), float(x), float(y)
    minx, miny, maxx, maxy = shapely.geometry.shape(geometry).bounds
    return float(minx), float(miny), float(maxx), float(maxy)


def delete_geo(conn: sqlite3.Connection, pk: int) -> None:
    conn.execute(
        "DELETE FROM geo_rtree WHERE gid IN (SELECT gid FROM geo WHERE entity_pk = ?)", (pk,)
    )
    conn.execute("DELETE FROM geo WHERE entity_pk = ?", (pk,))
