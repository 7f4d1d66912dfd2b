"""HTTP ingest and the registry API, on both engines (auth off: the `api` fixture)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.iot.conftest import BASE, provision

EX = "https://uri.etsi.org/ngsi-ld/default-context/"


def _key() -> str:
    return f"k{uuid.uuid4().hex[:10]}"


async def _entity(api: Any, tenant: str, eid: str) -> dict[str, Any]:
    r = await api.get(f"/ngsi-ld/v1/entities/{eid}", headers={"NGSILD-Tenant": tenant})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_json_ingest_with_time_instant(api: Any, tenant: str) -> None:
    key = _key()
    await provision(api, tenant, key, [{
        "device_id": "aq1", "entity_name": "urn:ngsi-ld:AirQualityObserved:aq1",
        "attributes": [{"object_id": "t", "name": "temperature", "type": "Number",
                        "unitCode": "CEL"},
                       {"object_id": "p", "name": "pm25", "type": "Integer"}],
        "static_attributes": [{"name": "district", "type": "Text", "value": "Pathum Wan"}],
        "location": {"type": "Point", "coordinates": [100.53, 13.74]},
    }])
    # Provisioning created the entity with static attributes and location.
    entity = await _entity(api, tenant, "urn:ngsi-ld:AirQualityObserved:aq1")
    assert entity["district"]["value"] == "Pathum Wan"
    assert entity["location"]["value"]["coordinates"] == [100.53, 13.74]

    r = await api.post(f"/iot/json?k={key}&i=aq1",
                       content=b'{"t": 31.5, "p": "42", "TimeInstant": "2024-03-01T10:00:00Z"}',
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    entity = await _entity(api, tenant, "urn:ngsi-ld:AirQualityObserved:aq1")
    assert entity["temperature"] == {"type": "Property", "value": 31.5, "unitCode": "CEL",
                                     "observedAt": "2024-03-01T10:00:00.000Z"}
    assert entity["pm25"]["value"] == 42


async def test_ul_ingest_receive_time_and_groups(api: Any, tenant: str) -> None:
    key = _key()
    await provision(api, tenant, key, [{"device_id": "ul1"}],
                    attributes=[{"object_id": "h", "name": "relativeHumidity", "type": "Number"}])
    r = await api.post(f"/iot/d?k={key}&i=ul1", content=b"t|25.3|h|40|s|ok",
                       headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    entity = await _entity(api, tenant, "urn:ngsi-ld:AirQualityObserved:ul1")
    assert entity["t"]["value"] == 25.3  # unmapped UL number → number
    assert entity["relativeHumidity"]["value"] == 40
    assert entity["s"]["value"] == "ok"
    assert entity["t"]["observedAt"].endswith("Z")
    # Two measure groups, the second with its own timestamp: the last one wins in the entity.
    r = await api.post(f"/iot/d?k={key}&i=ul1",
                       content=b"2024-01-01T00:00:00Z|t|20#2024-01-01T00:05:00Z|t|21")
    assert r.status_code == 200, r.text
    entity = await _entity(api, tenant, "urn:ngsi-ld:AirQualityObserved:ul1")
    assert entity["t"]["value"] == 21
    assert entity["t"]["observedAt"] == "2024-01-01T00:05:00.000Z"
    # GET with d= and t= (iotagent-ul HTTP binding).
    r = await api.get(f"/iot/d?k={key}&i=ul1&d=t|22&t=2024-01-01T00:10:00Z")
    assert r.status_code == 200, r.text
    entity = await _entity(api, tenant, "urn:ngsi-ld:AirQualityObserved:ul1")
    assert entity["t"]["observedAt"] == "2024-01-01T00:10:00.000Z"


async def test_rejections_are_dead_letters(api: Any, tenant: str) -> None:
    key = _key()
    await provision(api, tenant, key, [{"device_id": "d1", "attributes": [
        {"object_id": "n", "name": "count", "type": "Integer"}]}])
    other = _key()
    await provision(api, tenant, other, [{"device_id": "d2"}])
    cases = [
        (f"/iot/json?k={key}&i=ghost", b'{"a": 1}', 404, "unknown-device"),
        (f"/iot/json?k=nokey{key}&i=d1", b'{"a": 1}', 404, "unknown-apikey"),
        (f"/iot/json?k={key}&i=d2", b'{"a": 1}', 401, "wrong-apikey"),
        (f"/iot/json?k={key}&i=d1", b"{not json", 400, "bad-payload"),
        (f"/iot/json?k={key}&i=d1", b'{"n": "many"}', 400, "bad-payload"),
        (f"/iot/d?k={key}&i=d1", b"lonely", 400, "bad-payload"),
    ]
    for url, body, status, reason in cases:
        r = await api.post(url, content=body)
        assert r.status_code == status, (url, r.text)
        assert r.json()["detail"]
        letters = (await api.get(f"{BASE}/deadLetters?limit=1")).json()
        assert letters[0]["reason"] == reason, (url, letters[0])
    # The good path still works afterwards.
    r = await api.post(f"/iot/json?k={key}&i=d1", content=b'{"n": 3}')
    assert r.status_code == 200
    metrics = (await api.get(f"{BASE}/metrics")).json()
    assert metrics["rejected"]["bad-payload"] >= 3
    assert metrics["written"] >= 1


async def test_registry_crud(api: Any, tenant: str) -> None:
    key = _key()
    headers = {"NGSILD-Tenant": tenant}
    await provision(api, tenant, key, [{"device_id": "a"}, {"device_id": "b"}])
    r = await api.get(f"{BASE}/devices?limit=1", headers=headers)
    assert r.json()["count"] == 2 and [d["device_id"] for d in r.json()["devices"]] == ["a"]
    r = await api.get(f"{BASE}/devices/b", headers={"fiware-service": tenant})
    assert r.status_code == 200 and r.json()["apikey"] == key
    assert (await api.get(f"{BASE}/services/{key}")).json()["tenant"] == tenant
    assert (await api.delete(f"{BASE}/devices/b", headers=headers)).status_code == 204
    assert (await api.get(f"{BASE}/devices/b", headers=headers)).status_code == 404
    r = await api.post(f"/iot/json?k={key}&i=b", content=b'{"x": 1}')
    assert r.status_code == 404
    # Bad bodies are 400 and change nothing.
    r = await api.post(f"{BASE}/devices", json={"device_id": "c/d", "apikey": key},
                       headers=headers)
    assert r.status_code == 400
    r = await api.post(f"{BASE}/devices", json={"device_id": "c", "apikey": key,
                       "attributes": [{"name": "x", "type": "Weird"}]}, headers=headers)
    assert r.status_code == 400
    r = await api.post(f"{BASE}/services", json={"entity_type": "X"}, headers=headers)
    assert r.status_code == 400
    assert (await api.delete(f"{BASE}/services/{key}")).status_code == 204
    assert (await api.get(f"{BASE}/services/{key}")).status_code == 404


async def test_autoprovision_and_custom_resource(api: Any, tenant: str) -> None:
    key = _key()
    headers = {"NGSILD-Tenant": tenant}
    r = await api.post(f"{BASE}/services", headers=headers, json={
        "apikey": key, "entity_type": "WeatherObserved", "autoprovision": True,
        "resource": "/iot/city"})
    assert r.status_code == 201, r.text
    r = await api.post(f"/iot/city?k={key}&i=w9", content=b"t|30")
    assert r.status_code == 200, r.text
    entity = await _entity(api, tenant, "urn:ngsi-ld:WeatherObserved:w9")
    assert entity["t"]["value"] == 30
    assert (await api.post(f"/iot/other?k={key}&i=w9", content=b"t|1")).status_code == 404


async def test_registry_needs_a_credential(secured_api: Any, tenant: str) -> None:
    r = await secured_api.get(f"{BASE}/devices", headers={"NGSILD-Tenant": tenant})
    assert r.status_code == 401
    r = await secured_api.get(f"{BASE}/deadLetters")
    assert r.status_code == 401
    auth = {"Authorization": f"Bearer {secured_api.admin_token}", "NGSILD-Tenant": tenant}
    r = await secured_api.post(f"{BASE}/services", headers=auth,
                               json={"apikey": _key(), "entity_type": "X"})
    assert r.status_code == 201, r.text
