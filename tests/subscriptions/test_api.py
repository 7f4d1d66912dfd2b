"""Subscriptions API on both engines: CRUD, validation, and which changes notify."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Api
from tests.subscriptions.conftest import sensor, subscription
from tests.subscriptions.receiver import Receiver

SUBS = "/ngsi-ld/v1/subscriptions"
ENTITIES = "/ngsi-ld/v1/entities"


async def _create(api: Api, headers: dict[str, str], body: dict[str, Any]) -> str:
    r = await api.post(SUBS, json=body, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.headers["location"].rsplit("/", 1)[1])


async def test_crud(api: Api, headers: dict[str, str], receiver: Receiver) -> None:
    sid = await _create(api, headers, subscription(
        receiver.url, watchedAttributes=["temperature"], q="temperature>20",
        notification={"format": "keyValues", "attributes": ["temperature"]},
        description="hot sensors"))
    assert sid.startswith("urn:ngsi-ld:Subscription:")
    r = await api.get(f"{SUBS}/{sid}", headers=headers)
    assert r.status_code == 200
    doc = r.json()
    assert doc["id"] == sid and doc["type"] == "Subscription"
    assert doc["entities"] == [{"type": "Sensor"}]
    assert doc["watchedAttributes"] == ["temperature"]
    assert doc["q"] == "temperature>20"
    assert doc["status"] == "active" and doc["isActive"] is True
    assert doc["notification"]["format"] == "keyValues"
    assert doc["notification"]["attributes"] == ["temperature"]
    assert doc["notification"]["endpoint"]["uri"] == receiver.url
    assert doc["notification"]["timesSent"] == 0

    given = subscription(receiver.url, id="urn:ngsi-ld:Subscription:mine")
    assert await _create(api, headers, given) == "urn:ngsi-ld:Subscription:mine"
    r = await api.post(SUBS, json=given, headers=headers)
    assert r.status_code == 409

    r = await api.get(SUBS, params={"count": "true", "limit": "1"}, headers=headers)
    assert r.status_code == 200 and len(r.json()) == 1
    assert r.headers["ngsild-results-count"] == "2"

    r = await api.patch(f"{SUBS}/{sid}", json={"isActive": False,
                                               "notification": {"format": "concise"}},
                        headers=headers)
    assert r.status_code == 204, r.text
    doc = (await api.get(f"{SUBS}/{sid}", headers=headers)).json()
    assert doc["status"] == "paused" and doc["notification"]["format"] == "concise"
    assert doc["notification"]["attributes"] == ["temperature"]  # merged, not replaced

    assert (await api.delete(f"{SUBS}/{sid}", headers=headers)).status_code == 204
    assert (await api.get(f"{SUBS}/{sid}", headers=headers)).status_code == 404
    assert (await api.delete(f"{SUBS}/{sid}", headers=headers)).status_code == 404


async def test_bad_input_is_400(api: Api, headers: dict[str, str]) -> None:
    url = "http://127.0.0.1:9/x"
    bad = [
        {**subscription(url), "type": "Nope"},
        {"type": "Subscription", "notification": {"endpoint": {"uri": url}}},
        subscription("ftp://example.org/x"),
        subscription("not a uri"),
        subscription(url, q="temperature>>"),
        subscription(url, notification={"format": "keyValues", "showChanges": True}),
        subscription(url, notificationTrigger=["entityExploded"]),
        subscription(url, throttling=-1),
        subscription(url, expiresAt="2001-01-01T00:00:00Z"),
        subscription(url, geoQ={"geometry": "Point", "georel": "near;maxDistance==10"}),
        subscription(url, entities=[{"id": "urn:x:1"}]),
        subscription(url, timeInterval=5, watchedAttributes=["temperature"]),
        [1, 2],
    ]
    for body in bad:
        r = await api.post(SUBS, json=body, headers=headers)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert r.json()["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")
    r = await api.patch(f"{SUBS}/urn:ngsi-ld:Subscription:none", json={"isActive": False},
                        headers=headers)
    assert r.status_code == 404


async def test_fires_for_exactly_the_matching_changes(
    api: Api, headers: dict[str, str], tenant: str, receiver: Receiver
) -> None:
    await _create(api, headers, subscription(
        receiver.url, watchedAttributes=["temperature"], q="temperature>20"))
    await api.post(ENTITIES, json=sensor("urn:s:1", 25), headers=headers)  # fires
    await api.post(ENTITIES, json=sensor("urn:s:2", 10), headers=headers)  # q says no
    other = {"id": "urn:o:1", "type": "Other", "temperature": {"type": "Property", "value": 30}}
    await api.post(ENTITIES, json=other, headers=headers)  # type says no
    patch = {"humidity": {"type": "Property", "value": 50}}
    await api.post(f"{ENTITIES}/urn:s:1/attrs", json=patch, headers=headers)  # not watched
    upd = {"temperature": {"type": "Property", "value": 31}}
    await api.patch(f"{ENTITIES}/urn:s:1/attrs", json=upd, headers=headers)  # fires
    await api.patch(f"{ENTITIES}/urn:s:1/attrs", json=upd, headers=headers)  # same: no change
    await api.patch(f"{ENTITIES}/urn:s:2/attrs", json={"temperature": {"type": "Property",
                                                                     "value": 21}},
                    headers=headers)  # now matches q: fires
    await receiver.wait_for_entities(3)
    await receiver.quiet()
    values = [(e["id"], e["temperature"]["value"]) for e in receiver.entities()]
    assert values == [("urn:s:1", 25), ("urn:s:1", 31), ("urn:s:2", 21)]
    got = receiver.received
    note = got[0].body
    assert note["type"] == "Notification" and note["id"].startswith("urn:ngsi-ld:Notification:")
    assert note["subscriptionId"].startswith("urn:ngsi-ld:Subscription:")
    assert "notifiedAt" in note
    assert got[0].headers["ngsild-tenant"] == tenant
    assert got[0].headers["content-type"] == "application/json"

    # Another tenant's writes never reach this tenant's subscriber.
    other_headers = {**headers, "NGSILD-Tenant": tenant + "x"}
    await api.post(ENTITIES, json=sensor("urn:s:9", 99), headers=other_headers)
    await receiver.quiet()
    assert len(receiver.entities()) == 3


async def test_triggers_show_changes_and_formats(
    api: Api, headers: dict[str, str], receiver: Receiver
) -> None:
    await _create(api, headers, subscription(
        receiver.url,
        notificationTrigger=["entityCreated", "attributeUpdated", "attributeDeleted",
                             "entityDeleted"],
        notification={"showChanges": True, "attributes": ["temperature", "humidity"],
                      "endpoint": {"uri": receiver.url, "receiverInfo": [
                          {"key": "X-Token", "value": "s3cret"}]}}))
    await api.post(ENTITIES, json=sensor("urn:s:1", 20, humidity=40, noise=3), headers=headers)
    await api.patch(f"{ENTITIES}/urn:s:1/attrs",
                    json={"temperature": {"type": "Property", "value": 22}}, headers=headers)
    await api.delete(f"{ENTITIES}/urn:s:1/attrs/humidity", headers=headers)
    await api.delete(f"{ENTITIES}/urn:s:1", headers=headers)
    created, updated, attr_deleted, deleted = await receiver.wait_for_entities(4)
    assert set(created) == {"id", "type", "temperature", "humidity"}  # projection
    assert updated["temperature"] == {"type": "Property", "value": 22, "previousValue": 20}
    assert attr_deleted["humidity"]["value"] == "urn:ngsi-ld:null"
    assert deleted["id"] == "urn:s:1" and "deletedAt" in deleted
    assert receiver.received[0].headers["x-token"] == "s3cret"


async def test_keyvalues_and_geoq(api: Api, headers: dict[str, str], receiver: Receiver) -> None:
    await _create(api, headers, subscription(
        receiver.url,
        geoQ={"geometry": "Polygon", "georel": "within",
              "coordinates": [[[100, 13], [101, 13], [101, 14], [100, 14], [100, 13]]]},
        notification={"format": "keyValues"}))
    inside = sensor("urn:s:in", 1)
    inside["location"] = {"type": "GeoProperty", "value": {"type": "Point",
                                                           "coordinates": [100.5, 13.7]}}
    outside = sensor("urn:s:out", 1)
    outside["location"] = {"type": "GeoProperty", "value": {"type": "Point",
                                                            "coordinates": [98.9, 18.8]}}
    await api.post(ENTITIES, json=outside, headers=headers)
    await api.post(ENTITIES, json=inside, headers=headers)
    await receiver.wait_for_entities(1)
    await receiver.quiet()
    assert len(receiver.entities()) == 1
    entity = receiver.entities()[0]
    assert entity["id"] == "urn:s:in" and entity["temperature"] == 1
    assert entity["location"] == {"type": "Point", "coordinates": [100.5, 13.7]}


async def test_receiver_down_then_up_gets_everything_in_order(
    api: Api, headers: dict[str, str], receiver: Receiver
) -> None:
    sid = await _create(api, headers, subscription(receiver.url))
    state = api.client.app.state.subscriptions  # type: ignore[attr-defined]
    state.dispatcher.backoff_cap = 0.5
    await receiver.stop()
    await api.post(ENTITIES, json=sensor("urn:s:1", 0), headers=headers)
    for i in range(1, 20):
        r = await api.patch(f"{ENTITIES}/urn:s:1/attrs",
                            json={"temperature": {"type": "Property", "value": i}},
                            headers=headers)
        assert r.status_code == 204
    await asyncio.sleep(1.0)
    doc = (await api.get(f"{SUBS}/{sid}", headers=headers)).json()
    assert doc["notification"]["timesFailed"] >= 1
    assert doc["notification"]["status"] == "failed"
    await receiver.start()
    await receiver.wait_for_entities(20, seconds=15)
    await receiver.quiet()
    values = [e["temperature"]["value"] for e in receiver.entities()]
    assert values == list(range(20))
    doc = (await api.get(f"{SUBS}/{sid}", headers=headers)).json()
    # The backlog went out in batches: timesSent counts notifications, not entities.
    assert doc["notification"]["timesSent"] == len(receiver.received) < 20
    assert doc["notification"]["status"] == "ok"


async def test_paused_and_throttled(api: Api, headers: dict[str, str],
                                    receiver: Receiver) -> None:
    await _create(api, headers, subscription(receiver.url, isActive=False))
    await _create(api, headers, subscription(receiver.url, throttling=60,
                                             entities=[{"type": "Sensor", "id": "urn:s:t"}]))
    await api.post(ENTITIES, json=sensor("urn:s:t", 1), headers=headers)
    await api.patch(f"{ENTITIES}/urn:s:t/attrs",
                    json={"temperature": {"type": "Property", "value": 2}}, headers=headers)
    await receiver.wait_for_entities(1)
    await receiver.quiet()
    assert [e["temperature"]["value"] for e in receiver.entities()] == [1]
