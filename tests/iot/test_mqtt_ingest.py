"""MQTT ingest through the real Mosquitto, on both engines.

Each test runs its own app with MQTT on and a client id of its own, and removes that persistent
session at the end so the broker does not keep queueing for it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nakhon.iot.stats import mask_topic
from tests.iot.conftest import (
    BASE,
    forget_session,
    provision,
    publish,
    start_app,
    stop_app,
    wait_for,
)


class MqttApp:
    def __init__(self, db: str, data_dir: Path, broker: str) -> None:
        self.db, self.data_dir, self.broker = db, data_dir, broker
        self.client_id = f"nakhon-test-{uuid.uuid4().hex[:10]}"
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> httpx.AsyncClient:
        app, self.client = await start_app(
            self.db, self.data_dir, mqtt_url=self.broker, mqtt_client_id=self.client_id,
            iot_batch_wait_ms=2.0)
        await wait_for(lambda: _connected(app), limit=10)
        return self.client

    async def stop(self) -> None:
        if self.client is not None:
            await stop_app(self.client)
            self.client = None


async def _connected(app: Any) -> bool:
    return bool(app.state.iot.mqtt.connected.is_set())


@pytest.fixture
async def mqtt_app(iot_db: str, tmp_path: Path, mosquitto: str) -> AsyncIterator[MqttApp]:
    holder = MqttApp(iot_db, tmp_path, mosquitto)
    try:
        yield holder
    finally:
        await holder.stop()
        await forget_session(holder.client_id)


async def _attr(client: httpx.AsyncClient, tenant: str, eid: str, name: str) -> Any:
    r = await client.get(f"/ngsi-ld/v1/entities/{eid}", headers={"NGSILD-Tenant": tenant})
    return r.json().get(name) if r.status_code == 200 else None


async def test_json_and_ul_become_attributes(mqtt_app: MqttApp, tenant: str) -> None:
    client = await mqtt_app.start()
    key = f"k{uuid.uuid4().hex[:10]}"
    await provision(client, tenant, key, [
        {"device_id": "j1", "attributes": [{"object_id": "t", "name": "temperature",
                                            "type": "Number", "unitCode": "CEL"}]},
        {"device_id": "u1", "attributes": [{"object_id": "h", "name": "relativeHumidity",
                                            "type": "Number"}]},
    ])
    await publish([
        (f"/{key}/j1/attrs", '{"t": 30.5, "TimeInstant": "2024-05-01T03:00:00Z"}'),
        (f"/ul/{key}/u1/attrs", "h|61"),
        (f"/json/{key}/j1/attrs/co2", "412"),
    ])
    j1, u1 = "urn:ngsi-ld:AirQualityObserved:j1", "urn:ngsi-ld:AirQualityObserved:u1"

    async def arrived() -> bool:
        return (await _attr(client, tenant, j1, "co2")) is not None and \
            (await _attr(client, tenant, u1, "relativeHumidity")) is not None

    await wait_for(arrived)
    temp = await _attr(client, tenant, j1, "temperature")
    assert temp == {"type": "Property", "value": 30.5, "unitCode": "CEL",
                    "observedAt": "2024-05-01T03:00:00.000Z"}
    assert (await _attr(client, tenant, j1, "co2"))["value"] == 412
    hum = await _attr(client, tenant, u1, "relativeHumidity")
    assert hum["value"] == 61 and hum["observedAt"].endswith("Z")


async def test_bad_messages_are_dead_letters_and_the_loop_goes_on(
    mqtt_app: MqttApp, tenant: str
) -> None:
    client = await mqtt_app.start()
    key = f"k{uuid.uuid4().hex[:10]}"
    await provision(client, tenant, key, [{"device_id": "d1"}])
    before = (await client.get(f"{BASE}/metrics")).json().get("rejectedTotal", 0)
    await publish([
        (f"/{key}/ghost/attrs", "t|1"),              # unknown device
        (f"/nokey{key}/d1/attrs", "t|1"),            # unknown apikey
        (f"/json/{key}/d1/attrs", b"{\xff garbage"),  # not JSON
        (f"/ul/{key}/d1/attrs", "lonely"),           # not UltraLight
        (f"/{key}/d1/attrs", "t|7"),                 # good, after all of them
    ])
    eid = "urn:ngsi-ld:AirQualityObserved:d1"

    async def good_arrived() -> bool:
        return (await _attr(client, tenant, eid, "t")) is not None

    await wait_for(good_arrived)
    metrics = (await client.get(f"{BASE}/metrics")).json()
    assert metrics["rejectedTotal"] - before >= 4
    letters = (await client.get(f"{BASE}/deadLetters?limit=50")).json()
    # Letters never hold a key in clear: the topic's apikey level is masked.
    sent = {mask_topic(t) for t in (f"/{key}/ghost/attrs", f"/nokey{key}/d1/attrs",
                                    f"/json/{key}/d1/attrs", f"/ul/{key}/d1/attrs")}
    mine = {d["reason"] for d in letters if d["topic"] in sent}
    assert key not in str(letters)
    assert {"unknown-device", "unknown-apikey", "bad-payload"} <= mine


async def test_messages_sent_while_stopped_arrive_after_start(
    mqtt_app: MqttApp, tenant: str
) -> None:
    client = await mqtt_app.start()
    key = f"k{uuid.uuid4().hex[:10]}"
    await provision(client, tenant, key, [{"device_id": "p1", "attributes": [
        {"object_id": "n", "name": "seq", "type": "Integer"}]}])
    await mqtt_app.stop()  # the broker keeps the session and queues QoS 1 messages
    await publish([(f"/{key}/p1/attrs", f'{{"n": {i}}}') for i in range(1, 51)])
    client = await mqtt_app.start()
    eid = "urn:ngsi-ld:AirQualityObserved:p1"

    async def last_arrived() -> bool:
        seq = await _attr(client, tenant, eid, "seq")
        return seq is not None and seq["value"] == 50

    await wait_for(last_arrived, limit=15)
    metrics = (await client.get(f"{BASE}/metrics")).json()
    assert metrics["written"] >= 50


async def test_nothing_is_acked_before_its_commit(mqtt_app: MqttApp, tenant: str) -> None:
    """Messages received while every write fails are not acknowledged: after a restart the
    broker delivers them again and they are all written."""
    client = await mqtt_app.start()
    key = f"k{uuid.uuid4().hex[:10]}"
    await provision(client, tenant, key, [{"device_id": "a1", "attributes": [
        {"object_id": "n", "name": "seq", "type": "Integer"}]}])
    rt = client.app.state.iot  # type: ignore[attr-defined]

    async def failing(items: Any) -> Any:
        raise OSError("database down")

    rt.batcher._write = failing
    await publish([(f"/{key}/a1/attrs", f'{{"n": {i}}}') for i in range(1, 31)])

    async def all_received() -> bool:
        return int(rt.stats.counters["received"]) >= 30 and rt.stats.counters["retries"] > 0

    await wait_for(all_received, limit=10)
    await mqtt_app.stop()
    client = await mqtt_app.start()
    eid = "urn:ngsi-ld:AirQualityObserved:a1"

    async def last_arrived() -> bool:
        seq = await _attr(client, tenant, eid, "seq")
        return seq is not None and seq["value"] == 30

    await wait_for(last_arrived, limit=15)
    r = await client.get(f"/ngsi-ld/v1/temporal/entities/{eid}?attrs=seq&lastN=100",
                         headers={"NGSILD-Tenant": tenant})
    values = sorted({i["value"] for i in r.json()["seq"]})
    assert values == list(range(1, 31))
