"""Queries over HTTP: GET /entities and POST /entityOperations/query, on both engines."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import Api

E = "/ngsi-ld/v1/entities"


def spot(n: int) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:ParkingSpot:{n:03d}",
        "type": ["ParkingSpot", "Asset"] if n % 5 == 0 else "ParkingSpot",
        "status": {
            "type": "Property",
            "value": "free" if n % 2 else "occupied",
            "observedAt": f"2024-01-{1 + n % 28:02d}T00:00:00Z",
        },
        "level": {"type": "Property", "value": n % 4},
        "spec": {"type": "Property", "value": {"width": 2 + n % 3, "tags": ["a", "b"]}},
        "name": {"type": "Property", "value": f"ช่อง {n}"},
        "refParkingSite": {"type": "Relationship", "object": f"urn:ngsi-ld:Site:{n % 3}"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [100.5 + n * 0.001, 13.75]},
        },
        **({"scope": "/bangkok/pathumwan"} if n % 3 == 0 else {"scope": "/chachoengsao/mueang"}),
    }


@pytest.fixture
async def spots(api: Api, headers: dict[str, str]) -> list[dict[str, Any]]:
    items = [spot(n) for n in range(1, 41)]
    r = await api.post("/ngsi-ld/v1/entityOperations/create", json=items, headers=headers)
    assert r.status_code == 201, r.text
    return items


async def ids(api: Api, headers: dict[str, str], query: str) -> list[int]:
    r = await api.get(f"{E}?{query}&limit=1000", headers=headers)
    assert r.status_code == 200, (query, r.text)
    return [int(e["id"].rsplit(":", 1)[1]) for e in r.json()]


async def test_type_and_ids(api: Api, headers: dict[str, str], spots: Any) -> None:
    assert await ids(api, headers, "type=ParkingSpot") == list(range(1, 41))
    assert await ids(api, headers, "type=Asset") == [5, 10, 15, 20, 25, 30, 35, 40]
    assert await ids(api, headers, "type=ParkingSpot;Asset") == [5, 10, 15, 20, 25, 30, 35, 40]
    assert await ids(api, headers, "type=Nothing,Asset") == [5, 10, 15, 20, 25, 30, 35, 40]
    assert await ids(
        api, headers, "id=urn:ngsi-ld:ParkingSpot:002,urn:ngsi-ld:ParkingSpot:004"
    ) == [2, 4]
    assert await ids(api, headers, "idPattern=.*:00[1-3]$") == [1, 2, 3]


@pytest.mark.parametrize(("pattern", "found"), [
    ("(?i)parkingspot:01[0-2]$", [10, 11, 12]), (r":00(?!5)\d", [1, 2, 3, 4, 6, 7, 8, 9]),
    (r"(?<=:0)3\d$", list(range(30, 40))), ("[^0-8]$", [9, 19, 29, 39]),
])
async def test_id_patterns_answer_alike_on_both_engines(
        api: Api, headers: dict[str, str], spots: Any, pattern: str, found: list[int]) -> None:
    assert await ids(api, headers, "idPattern=" + quote(pattern)) == found


@pytest.mark.parametrize("pattern", ["[[:digit:]]+", r"\bSpot", "(?P<n>1)", "a{300}", "x{"])
async def test_unportable_id_patterns_are_refused_on_both_engines(
        api: Api, headers: dict[str, str], pattern: str) -> None:
    r = await api.get(f"{E}?idPattern={quote(pattern)}", headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    q = 'name~="' + pattern.replace("\\", "\\\\") + '"'
    r = await api.get(f"{E}?type=ParkingSpot&q={quote(q)}", headers=headers)
    assert r.status_code == 400, r.text


async def test_q(api: Api, headers: dict[str, str], spots: Any) -> None:
    everything = list(range(1, 41))
    assert await ids(api, headers, 'type=ParkingSpot&q=status=="free"') == [
        n for n in everything if n % 2
    ]
    assert await ids(api, headers, "type=ParkingSpot&q=level>=2;level<3") == [
        n for n in everything if n % 4 == 2
    ]
    assert await ids(api, headers, "type=ParkingSpot&q=level==1..2") == [
        n for n in everything if n % 4 in (1, 2)
    ]
    assert await ids(api, headers, "type=ParkingSpot&q=level==0,3") == [
        n for n in everything if n % 4 in (0, 3)
    ]
    assert await ids(api, headers, "type=ParkingSpot&q=spec[width]==4") == [
        n for n in everything if n % 3 == 2
    ]
    assert await ids(api, headers, 'type=ParkingSpot&q=refParkingSite=="urn:ngsi-ld:Site:1"') == [
        n for n in everything if n % 3 == 1
    ]
    assert await ids(api, headers, 'type=ParkingSpot&q=name~="ช่อง 1.*"') == [
        n for n in everything if str(n).startswith("1")
    ]
    assert await ids(api, headers, 'type=ParkingSpot&q=(level==0|level==1);status=="free"') == [
        n for n in everything if n % 4 in (0, 1) and n % 2
    ]
    assert await ids(
        api, headers, "type=ParkingSpot&q=status.observedAt>=2024-01-20T00:00:00Z"
    ) == [n for n in everything if 1 + n % 28 >= 20]
    assert await ids(api, headers, "type=ParkingSpot&q=nothing") == []
    assert await ids(api, headers, "type=ParkingSpot&q=!nothing") == everything


async def test_scope_and_attrs(api: Api, headers: dict[str, str], spots: Any) -> None:
    assert await ids(api, headers, "type=ParkingSpot&scopeQ=/bangkok/%23") == [
        n for n in range(1, 41) if n % 3 == 0
    ]
    assert await ids(api, headers, "attrs=level&type=ParkingSpot") == list(range(1, 41))
    assert await ids(api, headers, "attrs=nothing&type=ParkingSpot") == []


async def test_geo(api: Api, headers: dict[str, str], spots: Any) -> None:
    near = await ids(
        api,
        headers,
        "type=ParkingSpot&geometry=Point&georel=near;maxDistance==250&coordinates=[100.51,13.75]",
    )
    # points are 0.001 deg (~108 m) apart along the parallel 13.75 N
    assert near == [8, 9, 10, 11, 12]
    within = await ids(
        api,
        headers,
        "type=ParkingSpot&geometry=Polygon&georel=within"
        "&coordinates=[[[100.5005,13.7],[100.5035,13.7],[100.5035,13.8],"
        "[100.5005,13.8],[100.5005,13.7]]]",
    )
    assert within == [1, 2, 3]
    r = await api.get(
        f"{E}?type=ParkingSpot&geometry=Point&georel=within&coordinates=[1", headers=headers
    )
    assert r.status_code == 400


async def test_paging_and_count(api: Api, headers: dict[str, str], spots: Any) -> None:
    r = await api.get(f"{E}?type=ParkingSpot&limit=7&offset=35&count=true", headers=headers)
    assert r.status_code == 200
    assert r.headers["ngsild-results-count"] == "40"
    assert [e["id"][-3:] for e in r.json()] == ["036", "037", "038", "039", "040"]
    r = await api.get(f"{E}?type=ParkingSpot&limit=0&count=true", headers=headers)
    assert r.json() == [] and r.headers["ngsild-results-count"] == "40"
    r = await api.get(f"{E}?type=ParkingSpot&limit=100000", headers=headers)
    assert r.status_code == 403
    assert r.json()["type"].endswith("TooManyResults")
    r = await api.get(f"{E}?type=ParkingSpot&limit=-1", headers=headers)
    assert r.status_code == 400
    r = await api.get(f"{E}?type=ParkingSpot&limit=abc", headers=headers)
    assert r.status_code == 400


async def test_bad_queries_are_400(api: Api, headers: dict[str, str], spots: Any) -> None:
    for query in (
        "",
        "q=level>>1&type=ParkingSpot",
        "type=A;;B",
        "idPattern=(",
        "type=ParkingSpot&q=(a",
        "type=ParkingSpot&scopeQ=/a/%23/b",
        "type=ParkingSpot&options=bogus",
        "type=ParkingSpot&geometry=Point&georel=near&coordinates=[1,2]",
    ):
        r = await api.get(f"{E}?{query}", headers=headers)
        assert r.status_code == 400, (query, r.text)
        assert r.json()["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")


async def test_keyvalues_list_and_geojson(api: Api, headers: dict[str, str], spots: Any) -> None:
    r = await api.get(f"{E}?type=ParkingSpot&limit=2&options=keyValues", headers=headers)
    assert r.json()[0]["status"] == "occupied" if r.json()[0]["id"].endswith("2") else "free"
    r = await api.get(
        f"{E}?type=ParkingSpot&limit=3", headers={**headers, "Accept": "application/geo+json"}
    )
    assert r.status_code == 200
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 3
    assert fc["features"][0]["geometry"]["type"] == "Point"


async def test_post_query(api: Api, headers: dict[str, str], spots: Any) -> None:
    body = {
        "type": "Query",
        "entities": [{"type": "ParkingSpot"}],
        "q": "level==1",
        "attrs": ["level"],
    }
    r = await api.post("/ngsi-ld/v1/entityOperations/query?limit=100", json=body, headers=headers)
    assert r.status_code == 200, r.text
    got = r.json()
    assert [int(e["id"][-3:]) for e in got] == [n for n in range(1, 41) if n % 4 == 1]
    assert set(got[0]) - {"scope"} == {"id", "type", "level"}
    body = {
        "type": "Query",
        "geoQ": {
            "geometry": "Point",
            "coordinates": [100.51, 13.75],
            "georel": "near;maxDistance==150",
        },
    }
    r = await api.post("/ngsi-ld/v1/entityOperations/query", json=body, headers=headers)
    assert [int(e["id"][-3:]) for e in r.json()] == [9, 10, 11]
    r = await api.post("/ngsi-ld/v1/entityOperations/query", json={"type": "Nope"}, headers=headers)
    assert r.status_code == 400


async def test_purge(api: Api, headers: dict[str, str], spots: Any) -> None:
    r = await api.delete(f"{E}?type=ParkingSpot&q=level==0", headers=headers)
    assert r.status_code == 204, r.text
    assert await ids(api, headers, "type=ParkingSpot&q=level==0") == []
    assert len(await ids(api, headers, "type=ParkingSpot")) == 30
