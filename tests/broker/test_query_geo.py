"""Geo-queries (clause 4.10): parsing, exact matching, geodesic distances, search boxes."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from nakhon.broker.model import LOCATION, OBSERVATION_SPACE, Entity
from nakhon.broker.query import GeoQuery, match_geo, parse_geo
from nakhon.broker.query.geodesy import distance_m, inverse
from nakhon.core.errors import BadRequestData

X = "https://example.org/"


def expand(name: str) -> str:
    return X + name


def at(geometry: dict[str, Any], attr: str = LOCATION) -> Entity:
    return Entity("urn:e", [X + "T"], {attr: [{"type": "GeoProperty", "value": geometry}]})


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


SQUARE = [[[100.0, 13.0], [101.0, 13.0], [101.0, 14.0], [100.0, 14.0], [100.0, 13.0]]]


def test_vincenty_reference_case() -> None:
    # Flinders Peak → Buninyong, the classic check of Vincenty (1975): 54 972.271 m.
    def dms(d: int, m: int, s: float) -> float:
        return math.copysign(abs(d) + m / 60 + s / 3600, d)

    distance, _ = inverse(
        dms(144, 25, 29.52440),
        dms(-37, 57, 3.72030),
        dms(143, 55, 35.38390),
        dms(-37, 39, 10.15610),
    )
    assert distance == pytest.approx(54972.271, abs=0.001)


def test_one_degree_of_latitude_at_the_equator() -> None:
    distance, azimuth = inverse(0.0, 0.0, 0.0, 1.0)
    assert distance == pytest.approx(110574.389, abs=0.01)
    assert azimuth == pytest.approx(0.0)


def test_parse_defaults_and_errors() -> None:
    geo = parse_geo("Point", "near;maxDistance==2000", "[100.5, 13.75]", None, expand)
    assert geo.georel == "near" and geo.max_distance == 2000.0 and geo.min_distance is None
    assert geo.geoproperty == LOCATION and geo.geometry.equals(Point(100.5, 13.75))
    assert parse_geo("Point", "within", [1, 2], "observationSpace", expand).geoproperty == (
        OBSERVATION_SPACE
    )
    assert parse_geo("Point", "within", [1, 2], "area", expand).geoproperty == X + "area"
    assert parse_geo("Polygon", "within", SQUARE, None, expand).geojson["type"] == "Polygon"
    bad = [
        ("Circle", "within", "[1,2]"),
        ("Point", "near", "[1,2]"),
        ("Point", "near;maxDistance==0", "[1,2]"),
        ("Point", "near;maxDistance==-5", "[1,2]"),
        ("Point", "near;distance==5", "[1,2]"),
        ("Point", "touches", "[1,2]"),
        ("Point", "within", "[1,"),
        ("Point", "within", "[200,2]"),
        ("Point", "within", "[[1,2]]"),
        ("Point", "within", '["a",2]'),
        ("Polygon", "within", "[[[0,0],[1,0],[1,1]]]"),
        ("Polygon", "within", "[[[0,0],[1,1],[1,0],[0,1],[0,0]]]"),  # self-crossing
        ("LineString", "within", "[]"),
    ]
    for geometry, georel, coordinates in bad:
        with pytest.raises(BadRequestData):
            parse_geo(geometry, georel, coordinates, None, expand)


@pytest.mark.parametrize(
    ("georel", "target", "expected"),
    [
        ("within", point(100.5, 13.5), True),
        ("within", point(102.0, 13.5), False),
        ("intersects", {"type": "LineString", "coordinates": [[99, 13.5], [100.5, 13.5]]}, True),
        ("disjoint", point(102.0, 13.5), True),
        ("disjoint", point(100.5, 13.5), False),
        (
            "contains",
            {
                "type": "Polygon",
                "coordinates": [[[99, 12], [102, 12], [102, 15], [99, 15], [99, 12]]],
            },
            True,
        ),
        ("contains", point(100.5, 13.5), False),
        ("equals", {"type": "Polygon", "coordinates": SQUARE}, True),
        (
            "overlaps",
            {
                "type": "Polygon",
                "coordinates": [
                    [[100.5, 13.5], [102, 13.5], [102, 15], [100.5, 15], [100.5, 13.5]]
                ],
            },
            True,
        ),
        ("overlaps", point(100.5, 13.5), False),
    ],
)
def test_topology(georel: str, target: dict[str, Any], expected: bool) -> None:
    geo = parse_geo("Polygon", georel, SQUARE, None, expand)
    assert match_geo(geo, at(target)) is expected


def test_near_is_geodesic_metres() -> None:
    ref = (100.5018, 13.7563)  # Bangkok
    target = (100.5018 + 0.01, 13.7563 + 0.005)
    exact, _ = inverse(*ref, *target)
    entity = at(point(*target))
    inside = parse_geo("Point", f"near;maxDistance=={exact + 0.01}", list(ref), None, expand)
    outside = parse_geo("Point", f"near;maxDistance=={exact - 0.01}", list(ref), None, expand)
    assert match_geo(inside, entity) and not match_geo(outside, entity)
    far = parse_geo("Point", f"near;minDistance=={exact - 0.01}", list(ref), None, expand)
    close = parse_geo("Point", f"near;minDistance=={exact + 0.01}", list(ref), None, expand)
    assert match_geo(far, entity) and not match_geo(close, entity)


def test_near_a_polygon_and_inside_it() -> None:
    inside = at({"type": "Polygon", "coordinates": SQUARE})
    assert match_geo(parse_geo("Point", "near;maxDistance==1", [100.5, 13.5], None, expand), inside)
    assert not match_geo(
        parse_geo("Point", "near;minDistance==1", [100.5, 13.5], None, expand), inside
    )
    # 1 km east of the square's east edge, at its middle latitude.
    lon = 101.0 + 1000.0 / (111320.0 * math.cos(math.radians(13.5)))
    d = distance_m(Point(lon, 13.5), box(100.0, 13.0, 101.0, 14.0))
    assert d == pytest.approx(inverse(lon, 13.5, 101.0, 13.5)[0], abs=0.5)


def test_entities_without_the_geoproperty_never_match() -> None:
    geo = parse_geo("Point", "disjoint", [0, 0], None, expand)
    assert not match_geo(geo, Entity("urn:e", [X + "T"], {}))
    assert not match_geo(geo, at(point(1, 1), attr=X + "other"))
    assert match_geo(
        parse_geo("Point", "disjoint", [0, 0], "other", expand), at(point(1, 1), attr=X + "other")
    )
    broken = at({"type": "Point", "coordinates": "nope"})
    assert not match_geo(geo, broken)


def test_search_bbox() -> None:
    assert parse_geo("Polygon", "within", SQUARE, None, expand).search_bbox() == (
        100.0,
        13.0,
        101.0,
        14.0,
    )
    assert parse_geo("Polygon", "disjoint", SQUARE, None, expand).search_bbox() is None
    assert parse_geo("Point", "near;minDistance==5", [0, 0], None, expand).search_bbox() is None
    assert (
        parse_geo("Point", "near;maxDistance==5000", [0, 89.9], None, expand).search_bbox() is None
    )
    wrap = parse_geo("Point", "near;maxDistance==50000", [179.9, 0], None, expand).search_bbox()
    assert wrap is not None and wrap[0] == -180.0 and wrap[2] == 180.0


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-170, 170),
    st.floats(-80, 80),
    st.floats(-0.5, 0.5),
    st.floats(-0.5, 0.5),
    st.floats(10, 80000),
)
def test_near_matches_lie_in_the_search_bbox(
    lon: float, lat: float, dlon: float, dlat: float, metres: float
) -> None:
    geo: GeoQuery = parse_geo("Point", f"near;maxDistance=={metres:.3f}", [lon, lat], None, expand)
    target = (lon + dlon, max(-90.0, min(90.0, lat + dlat)))
    bbox = geo.search_bbox()
    assert bbox is not None
    distance = inverse(lon, lat, *target)[0]
    in_box = bbox[0] <= target[0] <= bbox[2] and bbox[1] <= target[1] <= bbox[3]
    if distance <= float(f"{metres:.3f}"):
        assert in_box
        assert match_geo(geo, at(point(*target)))
    else:
        assert not match_geo(geo, at(point(*target)))
