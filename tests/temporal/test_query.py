"""Temporal retrieve and query on both engines: timerel, lastN, attrs, q, geo, representations."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Api
from tests.temporal.conftest import SENSOR, START, T, get, iso

Points = list[tuple[datetime, float]]


def values(attr: Any) -> list[float]:
    return [i["value"] for i in attr]


async def test_retrieve_whole_history_normalized(
    api: Api, headers: dict[str, str], hourly: Points
) -> None:
    body = await get(api, headers, f"{T}/{SENSOR}")
    assert body["id"] == SENSOR and body["type"] == "Sensor"
    instances = body["temperature"]
    assert values(instances) == [v for _, v in hourly]
    assert [i["observedAt"] for i in instances] == [iso(t) for t, _ in hourly]
    ids = [i["instanceId"] for i in instances]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("urn:ngsi-ld:attribute:instance:") for i in ids)
    assert all("modifiedAt" not in i for i in instances)
    with_sys = await get(api, headers, f"{T}/{SENSOR}?options=sysAttrs")
    assert all("modifiedAt" in i and "createdAt" in i for i in with_sys["temperature"])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # before: t < timeAt; after: t >= timeAt; between: timeAt <= t < endTimeAt.
        ("timerel=before&timeAt=2024-01-01T03:00:00Z", range(3)),
        ("timerel=after&timeAt=2024-01-01T20:00:00Z", range(20, 24)),
        ("timerel=between&timeAt=2024-01-01T05:00:00Z&endTimeAt=2024-01-01T08:00:00Z",
         range(5, 8)),
        # the same instant with an offset selects the same instances
        ("timerel=between&timeAt=2024-01-01T12:00:00%2B07:00&endTimeAt=2024-01-01T08:00:00Z",
         range(5, 8)),
        ("timerel=before&timeAt=2024-01-01T00:00:00Z", range(0)),
        ("timerel=after&timeAt=2030-01-01T00:00:00Z", range(0)),
    ],
)
async def test_timerel(
    api: Api, headers: dict[str, str], hourly: Points, query: str, expected: range
) -> None:
    body = await get(api, headers, f"{T}/{SENSOR}?{query}")
    assert values(body.get("temperature", [])) == [hourly[i][1] for i in expected]


async def test_last_n(api: Api, headers: dict[str, str], hourly: Points) -> None:
    body = await get(api, headers, f"{T}/{SENSOR}?lastN=3")
    assert values(body["temperature"]) == [v for _, v in hourly[-3:]]
    url = f"{T}/{SENSOR}?lastN=2&timerel=before&timeAt=2024-01-01T10:00:00Z"
    body = await get(api, headers, url)
    assert values(body["temperature"]) == [hourly[8][1], hourly[9][1]]


async def test_temporal_values(api: Api, headers: dict[str, str], hourly: Points) -> None:
    for q in ("options=temporalValues", "format=temporalValues", "options=keyValues"):
        url = f"{T}/{SENSOR}?{q}&timerel=after&timeAt={iso(hourly[20][0])}"
        body = await get(api, headers, url)
        assert body["temperature"] == {
            "type": "Property",
            "values": [[v, iso(t)] for t, v in hourly[20:]],
        }


async def test_timeproperty_modified_at(api: Api, headers: dict[str, str], hourly: Points) -> None:
    # Every instance was written today: observedAt says 2024, modifiedAt says now.
    body = await get(api, headers, f"{T}/{SENSOR}?timeproperty=modifiedAt&timerel=after"
                                   "&timeAt=2025-01-01T00:00:00Z")
    assert len(body["temperature"]) == len(hourly)
    body = await get(api, headers, f"{T}/{SENSOR}?timerel=after&timeAt=2025-01-01T00:00:00Z")
    assert "temperature" not in body
    created = await get(api, headers, f"{T}/{SENSOR}?timeproperty=createdAt&timerel=before"
                                      "&timeAt=2025-01-01T00:00:00Z")
    assert "temperature" not in created


async def test_no_observed_at_uses_modification_time(api: Api, headers: dict[str, str]) -> None:
    eid = "urn:ngsi-ld:Counter:1"
    r = await api.post("/ngsi-ld/v1/entities", headers=headers, json={
        "id": eid, "type": "Counter", "n": {"type": "Property", "value": 1}})
    assert r.status_code == 201
    for v in (2, 3):
        r = await api.patch(f"/ngsi-ld/v1/entities/{eid}/attrs/n", headers=headers,
                            json={"value": v})
        assert r.status_code == 204, r.text
    body = await get(api, headers, f"{T}/{eid}?timerel=after&timeAt=2020-01-01T00:00:00Z")
    assert values(body["n"]) == [1, 2, 3]


async def test_query_entities_attrs_q_geo_and_count(api: Api, headers: dict[str, str]) -> None:
    for n in range(1, 5):
        body = {
            "id": f"urn:ngsi-ld:Station:{n}", "type": "Station",
            "pm25": {"type": "Property", "value": n * 10, "observedAt": "2024-01-01T00:00:00Z"},
            "no2": {"type": "Property", "value": n, "observedAt": "2024-01-01T00:00:00Z"},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [100.5 + n, 13.7]}},
        }
        r = await api.post("/ngsi-ld/v1/entities", json=body, headers=headers)
        assert r.status_code == 201, r.text
        r = await api.patch(f"/ngsi-ld/v1/entities/urn:ngsi-ld:Station:{n}/attrs", headers=headers,
                            json={"pm25": {"type": "Property", "value": n * 10 + 1,
                                           "observedAt": "2024-01-01T01:00:00Z"}})
        assert r.status_code == 204
    url = f"{T}?type=Station&attrs=pm25&timerel=after&timeAt=2024-01-01T00:00:00Z&count=true"
    r = await api.get(url, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["NGSILD-Results-Count"] == "4"
    got = r.json()
    assert [e["id"] for e in got] == [f"urn:ngsi-ld:Station:{n}" for n in range(1, 5)]
    assert all(set(e) == {"id", "type", "pm25"} for e in got)
    assert values(got[2]["pm25"]) == [30, 31]
    got = await get(api, headers, f"{T}?type=Station&q=pm25>25&attrs=pm25")
    assert [e["id"] for e in got] == ["urn:ngsi-ld:Station:3", "urn:ngsi-ld:Station:4"]
    near = await get(api, headers, f"{T}?type=Station&geometry=Point&georel=near;maxDistance==2000"
                                   "&coordinates=[102.5,13.7]")
    assert [e["id"] for e in near] == ["urn:ngsi-ld:Station:2"]
    page = await get(api, headers, f"{T}?type=Station&limit=2&offset=2&attrs=no2")
    assert [e["id"] for e in page] == ["urn:ngsi-ld:Station:3", "urn:ngsi-ld:Station:4"]
    # POST /temporal/entityOperations/query with temporalQ in the body
    r = await api.post("/ngsi-ld/v1/temporal/entityOperations/query?options=temporalValues",
                       headers=headers, json={
                           "type": "Query", "entities": [{"type": "Station"}], "attrs": ["pm25"],
                           "q": "no2>=3",
                           "temporalQ": {"timerel": "after", "timeAt": "2024-01-01T00:30:00Z"}})
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"id": f"urn:ngsi-ld:Station:{n}", "type": "Station",
         "pm25": {"type": "Property", "values": [[n * 10 + 1, "2024-01-01T01:00:00Z"]]}}
        for n in (3, 4)
    ]


async def test_paging_forward_and_backward(api: Api, headers: dict[str, str]) -> None:
    """More instances than NAKHON_TEMPORAL_INSTANCE_LIMIT: 206 and a range to continue from."""
    service = api.client.app.state  # type: ignore[attr-defined]
    from nakhon.temporal.api import temporal_service

    class _Req:
        app = api.client.app  # type: ignore[attr-defined]

    temporal = temporal_service(_Req())  # type: ignore[arg-type]
    saved = temporal.instance_limit
    temporal.instance_limit = 10
    try:
        eid = "urn:ngsi-ld:Sensor:paged"
        points = [(START + timedelta(minutes=5 * i), float(i)) for i in range(25)]
        from tests.temporal.conftest import write_series

        await write_series(api, headers, points, eid)
        seen: list[float] = []
        url = f"{T}/{eid}?timerel=after&timeAt=2023-12-31T00:00:00Z"
        for _ in range(5):
            r = await api.get(url, headers=headers)
            seen += values(r.json().get("temperature", []))
            if r.status_code == 200:
                break
            assert r.status_code == 206, r.text
            unit, _, rest = r.headers["Content-Range"].partition(" ")
            assert unit == "date-time" and rest.endswith("/*")
            nxt = rest[:-2].split("Z-", 1)[1]
            url = f"{T}/{eid}?timerel=after&timeAt={nxt}"
        assert seen == [v for _, v in points]
        # backward with lastN above the limit: newest first pages
        r = await api.get(f"{T}/{eid}?lastN=15", headers=headers)
        assert r.status_code == 206, r.text
        assert values(r.json()["temperature"]) == [float(i) for i in range(15, 25)]
        assert r.headers["Content-Range"].endswith("/15")
        oldest = r.headers["Content-Range"].split(" ", 1)[1].rsplit("/", 1)[0].split("Z-", 1)[1]
        r = await api.get(f"{T}/{eid}?lastN=5&timerel=before&timeAt={oldest}", headers=headers)
        assert r.status_code == 200
        assert values(r.json()["temperature"]) == [float(i) for i in range(10, 15)]
    finally:
        temporal.instance_limit = saved
        del service


@pytest.mark.parametrize(
    "query",
    [
        "timerel=sometime&timeAt=2024-01-01T00:00:00Z",
        "timerel=after",
        "timerel=after&timeAt=yesterday",
        "timerel=after&timeAt=2024-01-01T00:00:00",  # no time zone
        "timerel=between&timeAt=2024-01-01T00:00:00Z",
        "timerel=between&timeAt=2024-01-02T00:00:00Z&endTimeAt=2024-01-01T00:00:00Z",
        "timeAt=2024-01-01T00:00:00Z",
        "timeproperty=expiresAt",
        "lastN=0",
        "lastN=many",
        "options=aggregatedValues",
        "options=aggregatedValues&aggrMethods=median",
        "options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=1D",
        "options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=P1M1D",
        "options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=PT0.5S",
        "options=temporalValues,aggregatedValues&aggrMethods=avg",
        "options=whatever",
        "format=xml",
    ],
)
async def test_bad_input_is_400(
    api: Api, headers: dict[str, str], hourly: Points, query: str
) -> None:
    body = await get(api, headers, f"{T}/{SENSOR}?{query}", status=400)
    assert body["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")
    assert body["title"] and body["detail"]


async def test_not_found_and_filters(api: Api, headers: dict[str, str], hourly: Points) -> None:
    await get(api, headers, f"{T}/urn:ngsi-ld:Sensor:none", status=404)
    await get(api, headers, f"{T}/not a uri", status=400)
    await get(api, headers, f"{T}?timerel=after&timeAt=2024-01-01T00:00:00Z", status=400)
