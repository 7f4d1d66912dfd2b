"""Geo-queries (clause 4.10): ``georel``, ``geometry``, ``coordinates``, ``geoproperty``.

Topological relations (``within``, ``contains``, ``intersects``, ``disjoint``, ``equals``,
``overlaps``) are evaluated with shapely on longitude/latitude as planar coordinates, as
GeoJSON defines edges (RFC 7946). ``near`` distances are geodesic metres on WGS84 (see
:mod:`geodesy`): ``maxDistance==d`` keeps targets at distance ≤ d (inside the closed buffer),
``minDistance==d`` targets at distance > d (disjoint from it). The relation reads "target
georel reference": ``within`` means the entity's geometry lies within the reference.
An entity matches when any instance of its GeoProperty does; without it, never.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from nakhon.broker.model import GEO_CORE_ATTRS, LOCATION, NGSI_LD, Entity
from nakhon.broker.query.geodesy import degrees_for, distance_m
from nakhon.broker.query.q import Expand
from nakhon.core.errors import BadRequestData

GEOMETRIES = ("Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon")
GEORELS = ("near", "within", "contains", "intersects", "disjoint", "equals", "overlaps")
_NEAR = re.compile(r"near;(maxDistance|minDistance)==(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)")
_CORE_NAMES = {iri[len(NGSI_LD) :]: iri for iri in GEO_CORE_ATTRS}


@dataclass(frozen=True, slots=True)
class GeoQuery:
    """A parsed geo-query. ``geojson`` is the reference geometry as GeoJSON (for PostGIS)."""

    geometry: BaseGeometry
    georel: str
    max_distance: float | None = None
    min_distance: float | None = None
    geoproperty: str = LOCATION
    geojson: dict[str, Any] = field(default_factory=dict)

    def search_bbox(self) -> tuple[float, float, float, float] | None:
        """A (minx, miny, maxx, maxy) box that every matching geometry intersects.

        None when the relation cannot be bounded (``disjoint``, ``minDistance``) or the box
        would reach a pole. For ``maxDistance`` the reference bounds grow by the distance in
        degrees, rounded up; a box crossing ±180° longitude spans all longitudes.
        """
        if self.georel == "disjoint" or self.min_distance is not None:
            return None
        minx, miny, maxx, maxy = self.geometry.bounds
        if self.max_distance is None:
            return (minx, miny, maxx, maxy)
        grow = degrees_for(self.max_distance, max(abs(miny), abs(maxy)))
        if grow is None:
            return None
        dlon, dlat = grow
        minx, maxx = minx - dlon, maxx + dlon
        if minx < -180.0 or maxx > 180.0:
            minx, maxx = -180.0, 180.0
        return (minx, max(-90.0, miny - dlat), maxx, min(90.0, maxy + dlat))


def _bad(message: str) -> BadRequestData:
    return BadRequestData(f"Invalid geo-query: {message}")


def _check_positions(node: Any, depth: int) -> None:
    """Coordinates nest ``depth`` levels of arrays down to [lon, lat] positions in range."""
    if not isinstance(node, list) or not node:
        raise _bad("coordinates must be non-empty arrays")
    if depth == 0:
        if len(node) < 2 or len(node) > 3:
            raise _bad(f"a position has 2 or 3 numbers, not {node!r}")
        if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in node):
            raise _bad(f"a position holds numbers only, not {node!r}")
        if not all(math.isfinite(n) for n in node):
            raise _bad(f"non-finite number in {node!r}")
        lon, lat = node[0], node[1]
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise _bad(f"position {node!r} is outside longitude -180..180 / latitude -90..90")
        return
    for child in node:
        _check_positions(child, depth - 1)


_DEPTH = {
    "Point": 0,
    "LineString": 1,
    "MultiPoint": 1,
    "Polygon": 2,
    "MultiLineString": 2,
    "MultiPolygon": 3,
}


def _rings_closed(geometry: str, coords: Any) -> None:
    polygons = [coords] if geometry == "Polygon" else coords if geometry == "MultiPolygon" else []
    for polygon in polygons:
        for ring in polygon:
            if len(ring) < 4 or ring[0] != ring[-1]:
                raise _bad("polygon rings need 4 or more positions, the last equal to the first")


def parse_geo(
    geometry: str,
    georel: str,
    coordinates: str | list[Any],
    geoproperty: str | None,
    expand: Expand,
) -> GeoQuery:
    """Validate and parse the four geo-query parameters (already URL-decoded).

    ``coordinates`` is JSON text or the decoded array. ``geoproperty`` defaults to
    ``location``; the core names ``location``, ``observationSpace`` and ``operationSpace``
    map to their core IRIs, other names go through ``expand``. Raises BadRequestData.
    """
    if geometry not in GEOMETRIES:
        raise _bad(f"geometry {geometry!r} is not one of {', '.join(GEOMETRIES)}")
    max_distance = min_distance = None
    near = _NEAR.fullmatch(georel or "")
    if near:
        distance = float(near.group(2))
        if not (math.isfinite(distance) and distance > 0):
            raise _bad("the near distance must be a positive number of metres")
        if near.group(1) == "maxDistance":
            max_distance = distance
        else:
            min_distance = distance
        relation = "near"
    elif georel in GEORELS and georel != "near":
        relation = georel
    else:
        raise _bad(
            f"georel {georel!r} is not near;maxDistance==<metres>, near;minDistance==<metres>"
            ", within, contains, intersects, disjoint, equals or overlaps"
        )
    if isinstance(coordinates, str):
        try:
            coords = json.loads(coordinates)
        except ValueError as exc:
            raise _bad(f"coordinates are not valid JSON: {exc}") from exc
    else:
        coords = coordinates
    _check_positions(coords, _DEPTH[geometry])
    _rings_closed(geometry, coords)
    geojson = {"type": geometry, "coordinates": coords}
    try:
        reference = shape(geojson)
    except Exception as exc:
        raise _bad(f"coordinates do not form a {geometry}: {exc}") from exc
    if not reference.is_valid:
        raise _bad(f"the {geometry} is not valid: {shapely.validation.explain_validity(reference)}")
    name = geoproperty or "location"
    if name in _CORE_NAMES:
        prop = _CORE_NAMES[name]
    else:
        try:
            prop = expand(name)
        except Exception as exc:
            raise _bad(f"cannot expand geoproperty {name!r}: {exc}") from exc
    return GeoQuery(reference, relation, max_distance, min_distance, prop, geojson)


def _target(value: Any) -> BaseGeometry | None:
    if not isinstance(value, dict) or value.get("type") not in GEOMETRIES:
        return None
    try:
        geom = shape(value)
    except Exception:
        return None
    if geom.is_empty:
        return None
    return geom if geom.is_valid else shapely.make_valid(geom)


def _relation(geo: GeoQuery, target: BaseGeometry) -> bool:
    ref = geo.geometry
    if geo.georel == "near":
        if geo.max_distance is not None:
            box = geo.search_bbox()
            if box is not None and not target.intersects(shapely.box(*box)):
                return False  # cheap and conservative: farther than the distance
            return distance_m(ref, target) <= geo.max_distance
        return distance_m(ref, target) > (geo.min_distance or 0.0)
    test = {
        "within": target.within,
        "contains": target.contains,
        "intersects": target.intersects,
        "disjoint": target.disjoint,
        "equals": target.equals,
        "overlaps": target.overlaps,
    }[geo.georel]
    return bool(test(ref))


def match_geo(geo: GeoQuery, entity: Entity) -> bool:
    """Does ``entity`` satisfy ``geo``? (Exact; see the module docstring.)"""
    for instance in entity.attrs.get(geo.geoproperty) or []:
        target = _target(instance.get("value"))
        if target is not None and _relation(geo, target):
            return True
    return False
