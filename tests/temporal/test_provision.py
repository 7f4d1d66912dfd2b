"""Temporal provision on both engines: upsert, append, delete attribute/entity, one instance."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.temporal.conftest import E, T, get

EID = "urn:ngsi-ld:Vehicle:7"


def inst(v: Any, t: str, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": v, "observedAt": t, **extra}


async def create(api: Api, headers: dict[str, str]) -> None:
    r = await api.post(T, headers=headers, json={
        "id": EID, "type": "Vehicle",
        "speed": [inst(50, "2024-01-01T00:02:00Z"), inst(40, "2024-01-01T00:01:00Z"),
                  inst(70, "2024-01-01T00:00:00Z", datasetId="urn:ngsi-ld:Dataset:gps")],
    })
    assert r.status_code == 201, r.text
    assert r.headers["Location"].endswith(f"/temporal/entities/{EID}")


async def test_upsert_creates_entity_and_history(api: Api, headers: dict[str, str]) -> None:
    await create(api, headers)
    # The newest instance per datasetId is the entity's current value.
    current = await get(api, headers, f"{E}/{EID}")
    speeds = current["speed"]
    assert {s["value"] for s in speeds} == {50, 70}
    body = await get(api, headers, f"{T}/{EID}")
    assert [i["value"] for i in body["speed"]] == [70, 40, 50]
    # Upsert again: instances are added, the older one does not replace the current value.
    r = await api.post(T, headers=headers, json={
        "id": EID, "type": "Vehicle", "speed": [inst(10, "2023-12-31T00:00:00Z")]})
    assert r.status_code == 204, r.text
    current = await get(api, headers, f"{E}/{EID}")
    assert next(s for s in current["speed"] if "datasetId" not in s)["value"] == 50
    body = await get(api, headers, f"{T}/{EID}?options=temporalValues")
    default = next(d for d in body["speed"] if "datasetId" not in d)
    assert [v for v, _ in default["values"]] == [10, 40, 50]


async def test_append_modify_delete_instance(api: Api, headers: dict[str, str]) -> None:
    await create(api, headers)
    r = await api.post(f"{T}/{EID}/attrs", headers=headers, json={
        "speed": [inst(60, "2024-01-01T00:03:00Z")],
        "fuel": inst(0.5, "2024-01-01T00:03:00Z")})
    assert r.status_code == 204, r.text
    body = await get(api, headers, f"{T}/{EID}?attrs=speed")
    assert [i["value"] for i in body["speed"]] == [70, 40, 50, 60]
    assert "fuel" not in body
    target = body["speed"][1]["instanceId"]
    r = await api.patch(f"{T}/{EID}/attrs/speed/{target}", headers=headers,
                        json={"speed": [{"type": "Property", "value": 45,
                                         "observedAt": "2024-01-01T00:01:00Z"}]})
    assert r.status_code == 204, r.text
    body = await get(api, headers, f"{T}/{EID}?attrs=speed")
    assert [i["value"] for i in body["speed"]] == [70, 45, 50, 60]
    assert body["speed"][1]["instanceId"] == target
    r = await api.delete(f"{T}/{EID}/attrs/speed/{target}", headers=headers)
    assert r.status_code == 204
    body = await get(api, headers, f"{T}/{EID}?attrs=speed")
    assert [i["value"] for i in body["speed"]] == [70, 50, 60]
    r = await api.delete(f"{T}/{EID}/attrs/speed/{target}", headers=headers)
    assert r.status_code == 404
    r = await api.patch(f"{T}/{EID}/attrs/speed/urn:ngsi-ld:attribute:instance:999999999",
                        headers=headers, json={"value": 1})
    assert r.status_code == 404
    r = await api.post(f"{T}/urn:ngsi-ld:Vehicle:none/attrs", headers=headers,
                       json={"speed": [inst(1, "2024-01-01T00:00:00Z")]})
    assert r.status_code == 404


async def test_delete_attribute_and_entity(api: Api, headers: dict[str, str]) -> None:
    await create(api, headers)
    # Only the default instance's history goes without datasetId/deleteAll.
    r = await api.delete(f"{T}/{EID}/attrs/speed", headers=headers)
    assert r.status_code == 204, r.text
    body = await get(api, headers, f"{T}/{EID}?attrs=speed")
    assert [i["value"] for i in body["speed"]] == [70]
    r = await api.delete(f"{T}/{EID}/attrs/speed?deleteAll=true", headers=headers)
    assert r.status_code == 204
    body = await get(api, headers, f"{T}/{EID}?attrs=speed")
    assert "speed" not in body
    r = await api.delete(f"{T}/{EID}/attrs/speed?deleteAll=true", headers=headers)
    assert r.status_code == 404
    r = await api.delete(f"{T}/{EID}", headers=headers)
    assert r.status_code == 204
    await get(api, headers, f"{E}/{EID}", status=404)
    r = await api.delete(f"{T}/{EID}", headers=headers)
    assert r.status_code == 404


async def test_bad_provision_is_400(api: Api, headers: dict[str, str]) -> None:
    for body in (
        [],
        {"id": EID},
        {"id": "no uri", "type": "Vehicle"},
        {"id": EID, "type": "Vehicle", "speed": []},
        {"id": EID, "type": "Vehicle", "speed": [1, 2]},
        {"id": EID, "type": "Vehicle", "speed": {"type": "Property", "values": [[1, "x"]]}},
        {"id": EID, "type": "Vehicle", "speed": [inst(1, "yesterday")]},
    ):
        r = await api.post(T, headers=headers, json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")
    await get(api, headers, f"{E}/{EID}", status=404)
    r = await api.delete(f"{T}/{EID}/attrs/speed/not-a-uri", headers=headers)
    assert r.status_code == 400
