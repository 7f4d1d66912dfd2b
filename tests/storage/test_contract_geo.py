"""The storage contract's geo-queries, run against every engine: every georel and distance
checked against Shapely and the haversine formula on a random city, and GeoProperties other
than location."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import shapely
from shapely.geometry import Point, Polygon, box

from nakhon.broker.model import LOCATION
from nakhon.broker.query import GeoQuery
from nakhon.storage.base import EntityQuery, Storage, WriteOp

from .test_contract import all_ids, delete, geo, located, put_all, set_attr

# --- geo-queries ---------------------------------------------------------------------------


def _haversine(a: Point, b: Point) -> float:
    lon1, lat1, lon2, lat2 = map(math.radians, (a.x, a.y, b.x, b.y))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371008.8 * math.asin(math.sqrt(h))


def _city(rng: random.Random, n: int) -> dict[str, Any]:
    """Random points, small squares and lines around Bangkok."""
    shapes: dict[str, Any] = {}
    for i in range(n):
        x, y = 100.40 + rng.random() * 0.3, 13.60 + rng.random() * 0.3
        kind = i % 3
        if kind == 0:
            shapes[f"urn:g:{i:03d}"] = Point(x, y)
        elif kind == 1:
            d = 0.002 + rng.random() * 0.03
            shapes[f"urn:g:{i:03d}"] = box(x, y, x + d, y + d)
        else:
            shapes[f"urn:g:{i:03d}"] = shapely.LineString([(x, y), (x + 0.02, y + 0.01)])
    return shapes


async def test_geo_relations_match_shapely(storage: Storage) -> None:
    shapes = _city(random.Random(42), 150)
    await put_all(storage, [located(i, g) for i, g in shapes.items()])
    area = Polygon([(100.45, 13.65), (100.62, 13.63), (100.66, 13.80), (100.50, 13.84)])
    tests: list[tuple[str, Any, Callable[[Any], bool]]] = [
        ("within", area, lambda g: g.within(area)),
        ("intersects", area, lambda g: g.intersects(area)),
        ("disjoint", area, lambda g: g.disjoint(area)),
        ("overlaps", area, lambda g: g.overlaps(area)),
    ]
    probe = next(g for g in shapes.values() if g.geom_type == "Polygon").centroid
    tests.append(("contains", probe, lambda g: g.contains(probe)))
    exact = next(g for g in shapes.values() if g.geom_type == "Polygon")
    tests.append(("equals", exact, lambda g: g.equals(exact)))
    for georel, geometry, predicate in tests:
        expected = sorted(i for i, g in shapes.items() if predicate(g))
        q = EntityQuery(geo=GeoQuery(geometry=geometry, georel=georel), count=True)
        got = await all_ids(storage, q)
        assert got == expected, georel
        assert expected or georel in {"equals", "overlaps"}, f"vacuous test for {georel}"


async def test_geo_near_distances(storage: Storage) -> None:
    rng = random.Random(3)
    points = {
        f"urn:n:{i:03d}": Point(100.50 + rng.random() * 0.1, 13.70 + rng.random() * 0.1)
        for i in range(200)
    }
    await put_all(storage, [located(i, p) for i, p in points.items()])
    centre = Point(100.55, 13.75)
    for metres in (500.0, 2500.0, 6000.0):
        # Engines may measure on the sphere or the spheroid; leave out a 1% band at the edge.
        dist = {i: _haversine(centre, p) for i, p in points.items()}
        clear = {i for i, d in dist.items() if abs(d - metres) > metres * 0.01}
        gq = GeoQuery(geometry=centre, georel="near", max_distance=metres)
        got = set(await all_ids(storage, EntityQuery(geo=gq)))
        assert got & clear == {i for i in clear if dist[i] < metres}
        gq = GeoQuery(geometry=centre, georel="near", min_distance=metres)
        got = set(await all_ids(storage, EntityQuery(geo=gq)))
        assert got & clear == {i for i in clear if dist[i] > metres}


async def test_geo_on_other_geoproperty_and_updates(storage: Storage) -> None:
    await put_all(
        storage,
        [located("urn:o:1", Point(100.5, 13.7), serviceArea=geo(box(100.0, 13.0, 101.0, 14.0)))],
    )
    inside = box(100.4, 13.6, 100.6, 13.8)
    by_loc = GeoQuery(geometry=inside, georel="within")
    by_area = GeoQuery(Point(100.9, 13.9), "intersects", geoproperty="serviceArea")
    assert await all_ids(storage, EntityQuery(geo=by_loc)) == ["urn:o:1"]
    assert await all_ids(storage, EntityQuery(geo=by_area)) == ["urn:o:1"]
    await storage.write([WriteOp("", "urn:o:1", set_attr(LOCATION, geo(Point(99.0, 18.8))))])
    assert await all_ids(storage, EntityQuery(geo=by_loc)) == []
    assert await all_ids(storage, EntityQuery(geo=by_area)) == ["urn:o:1"]
    await storage.write([WriteOp("", "urn:o:1", delete)])
    assert await all_ids(storage, EntityQuery(geo=by_area)) == []


