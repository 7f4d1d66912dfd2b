"""GeoJSON geometries (RFC 7946) as NGSI-LD GeoProperty values: shape and validity checks."""

from __future__ import annotations

import math
from typing import Any

from shapely.geometry import shape
from shapely.validation import explain_validity

from nakhon.core.errors import BadRequestData

GEOMETRY_TYPES = frozenset({"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                            "MultiPolygon", "GeometryCollection"})


def looks_like_geometry(value: Any) -> bool:
    """Whether ``value`` has the shape of a GeoJSON geometry (not whether it is valid)."""
    if not isinstance(value, dict):
        return False
    gtype = value.get("type")
    return (isinstance(gtype, str) and gtype in GEOMETRY_TYPES
            and ("coordinates" in value or "geometries" in value))


def validate_geometry(value: Any, what: str) -> None:
    """Raise unless ``value`` is a valid GeoJSON geometry in WGS 84 (RFC 7946)."""
    gtype = value.get("type") if isinstance(value, dict) else None
    if not isinstance(gtype, str) or gtype not in GEOMETRY_TYPES:
        raise BadRequestData(f"{what} must be a GeoJSON geometry (Point, LineString, Polygon,"
                             f" Multi*, GeometryCollection), got {short(value)}")
    if gtype == "GeometryCollection":
        parts = value.get("geometries")
        if not isinstance(parts, list):
            raise BadRequestData(f"{what}: GeometryCollection needs a 'geometries' array")
        for i, part in enumerate(parts):
            validate_geometry(part, f"{what}.geometries[{i}]")
        return
    coords = value.get("coordinates")
    depth = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2,
             "Polygon": 2, "MultiPolygon": 3}[gtype]
    _check_coords(coords, depth, gtype, what)
    if gtype not in ("Polygon", "MultiPolygon"):
        # Checked positions (and counts, for lines) are all a point or a line needs; only
        # polygons have validity rules (rings, self-intersection) worth the cost of GEOS.
        return
    try:
        geom = shape(value)
    except Exception as exc:  # shapely raises several types for malformed input
        raise BadRequestData(f"{what}: invalid {gtype}: {exc}") from None
    # Geo-queries on self-intersecting polygons give wrong answers (or GEOS errors) later.
    if not geom.is_valid:
        raise BadRequestData(f"{what}: invalid {gtype}: {explain_validity(geom)}")


def _check_coords(coords: Any, depth: int, gtype: str, what: str) -> None:
    if depth == 0:
        _check_position(coords, what)
        return
    if not isinstance(coords, list):
        raise BadRequestData(f"{what}: {gtype} coordinates must be nested arrays")
    for part in coords:
        _check_coords(part, depth - 1, gtype, what)
    if depth == 1 and gtype != "MultiPoint":
        ring = gtype in ("Polygon", "MultiPolygon")
        least = 4 if ring else 2
        if len(coords) < least:
            kind = "a linear ring" if ring else "a line"
            raise BadRequestData(f"{what}: {kind} needs at least {least} positions")
        if ring and coords[0] != coords[-1]:
            raise BadRequestData(f"{what}: a polygon ring must be closed (first == last)")
    if gtype in ("Polygon", "MultiPolygon") and depth == 2 and not coords:
        raise BadRequestData(f"{what}: a polygon needs at least one ring")


def _check_position(pos: Any, what: str) -> None:
    if not isinstance(pos, list) or len(pos) not in (2, 3) or not all(
            isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c)
            for c in pos):
        raise BadRequestData(f"{what}: a position is [longitude, latitude(, altitude)] of"
                             f" numbers, got {short(pos)}")
    if not (-180 <= pos[0] <= 180 and -90 <= pos[1] <= 90):
        raise BadRequestData(f"{what}: position {pos} is outside longitude -180..180 /"
                             " latitude -90..90")


def short(value: Any) -> str:
    """``repr(value)``, cut to 80 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
