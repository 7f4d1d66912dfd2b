"""Batch operations and discovery over HTTP, on both engines."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

OPS = "/ngsi-ld/v1/entityOperations"
E = "/ngsi-ld/v1/entities"


def sensor(n: int, value: float = 1.0) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Sensor:{n}",
        "type": "Sensor",
        "pm25": {"type": "Property", "value": value, "unitCode": "GQ"},
    }


async def test_batch_create_partial(api: Api, headers: dict[str, str]) -> None:
    r = await api.post(f"{OPS}/create", json=[sensor(1), sensor(2)], headers=headers)
    assert r.status_code == 201 and r.json() == ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2"]
    r = await api.post(
        f"{OPS}/create", json=[sensor(2), sensor(3), {"id": "bad id", "type": "X"}], headers=headers
    )
    assert r.status_code == 207, r.text
    body = r.json()
    assert body["success"] == ["urn:ngsi-ld:Sensor:3"]
    errors = {e["entityId"]: e["error"]["type"].rsplit("/", 1)[1] for e in body["errors"]}
    assert errors == {"urn:ngsi-ld:Sensor:2": "AlreadyExists", "bad id": "BadRequestData"}


async def test_batch_upsert_update_merge_delete(api: Api, headers: dict[str, str]) -> None:
    r = await api.post(f"{OPS}/upsert", json=[sensor(1), sensor(2)], headers=headers)
    assert r.status_code == 201
    r = await api.post(f"{OPS}/upsert", json=[sensor(1, 5.0), sensor(2, 6.0)], headers=headers)
    assert r.status_code == 204
    got = (await api.get(f"{E}/urn:ngsi-ld:Sensor:2", headers=headers)).json()
    assert got["pm25"]["value"] == 6.0
    extra = {
        "id": "urn:ngsi-ld:Sensor:1",
        "type": "Sensor",
        "pm10": {"type": "Property", "value": 9},
    }
    r = await api.post(f"{OPS}/upsert?options=update", json=[extra, sensor(3)], headers=headers)
    assert r.status_code == 207 or r.status_code == 201, r.text
    got = (await api.get(f"{E}/urn:ngsi-ld:Sensor:1", headers=headers)).json()
    assert got["pm25"]["value"] == 5.0 and got["pm10"]["value"] == 9
    r = await api.post(f"{OPS}/upsert?options=replace", json=[extra], headers=headers)
    assert r.status_code == 204
    got = (await api.get(f"{E}/urn:ngsi-ld:Sensor:1", headers=headers)).json()
    assert "pm25" not in got
    r = await api.post(f"{OPS}/update", json=[sensor(1, 7.0), sensor(99)], headers=headers)
    assert r.status_code == 207
    assert r.json()["success"] == ["urn:ngsi-ld:Sensor:1"]
    r = await api.post(
        f"{OPS}/merge",
        json=[
            {
                "id": "urn:ngsi-ld:Sensor:1",
                "type": "Sensor",
                "pm10": {"type": "Property", "value": 10},
            }
        ],
        headers=headers,
    )
    assert r.status_code == 204, r.text
    r = await api.post(
        f"{OPS}/delete", json=["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:404"], headers=headers
    )
    assert r.status_code == 207
    assert r.json()["success"] == ["urn:ngsi-ld:Sensor:1"]
    r = await api.post(f"{OPS}/delete", json=["urn:ngsi-ld:Sensor:2"], headers=headers)
    assert r.status_code == 204


async def test_batch_bad_bodies(api: Api, headers: dict[str, str]) -> None:
    for body in ({}, [], "x", 1):
        r = await api.post(f"{OPS}/create", json=body, headers=headers)
        assert r.status_code == 400, body
    r = await api.post(f"{OPS}/delete", json=[1], headers=headers)
    assert r.status_code in (207, 400)


async def test_discovery(api: Api, headers: dict[str, str]) -> None:
    await api.post(
        f"{OPS}/create",
        json=[
            sensor(1),
            sensor(2),
            {
                "id": "urn:ngsi-ld:Road:1",
                "type": "Road",
                "name": {"type": "Property", "value": "ถนน"},
                "pm25": {"type": "Relationship", "object": "urn:x:1"},
            },
        ],
        headers=headers,
    )
    r = await api.get("/ngsi-ld/v1/types", headers=headers)
    assert r.status_code == 200
    assert r.json()["type"] == "EntityTypeList"
    assert sorted(r.json()["typeList"]) == ["Road", "Sensor"]
    r = await api.get("/ngsi-ld/v1/types?details=true", headers=headers)
    sensor_type = next(t for t in r.json() if t["typeName"] == "Sensor")
    assert sensor_type["attributeNames"] == ["pm25"] and sensor_type["type"] == "EntityType"
    r = await api.get("/ngsi-ld/v1/types/Sensor", headers=headers)
    info = r.json()
    assert info["entityCount"] == 2 and info["type"] == "EntityTypeInfo"
    assert info["attributeDetails"][0]["attributeName"] == "pm25"
    assert (await api.get("/ngsi-ld/v1/types/Nope", headers=headers)).status_code == 404
    r = await api.get("/ngsi-ld/v1/attributes", headers=headers)
    assert sorted(r.json()["attributeList"]) == ["name", "pm25"]
    r = await api.get("/ngsi-ld/v1/attributes/pm25", headers=headers)
    attr = r.json()
    assert attr["attributeCount"] == 3
    assert sorted(attr["attributeTypes"]) == ["Property", "Relationship"]
    assert sorted(attr["typeNames"]) == ["Road", "Sensor"]
    r = await api.get("/ngsi-ld/v1/attributes?details=true", headers=headers)
    assert {a["attributeName"] for a in r.json()} == {"name", "pm25"}
