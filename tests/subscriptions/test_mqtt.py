"""MQTT delivery to the real Mosquitto on 127.0.0.1:1883, received by a real aiomqtt client."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import aiomqtt
import orjson
import pytest

from tests.conftest import Api
from tests.subscriptions.conftest import sensor

REQUIRE_ALL = os.environ.get("NAKHON_REQUIRE_ALL") == "1"


def _mosquitto_up() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 1883)) == 0


@pytest.fixture
def mosquitto() -> None:
    if not _mosquitto_up():
        if REQUIRE_ALL:
            pytest.fail("Mosquitto is required (NAKHON_REQUIRE_ALL=1) but 127.0.0.1:1883 is down")
        pytest.skip("Mosquitto not running on 127.0.0.1:1883")


async def test_mqtt_notifications_arrive_in_order(
    api: Api, headers: dict[str, str], tenant: str, mosquitto: None
) -> None:
    topic = f"nakhon/test/{uuid.uuid4().hex}"
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.subscribe(topic, qos=1)
        body = {
            "type": "Subscription",
            "entities": [{"type": "Sensor"}],
            "notification": {
                "format": "keyValues",
                "endpoint": {
                    "uri": f"mqtt://127.0.0.1:1883/{topic}",
                    "notifierInfo": [{"key": "MQTT-QoS", "value": "1"}],
                    "receiverInfo": [{"key": "X-Origin", "value": "nakhon-test"}],
                },
            },
        }
        r = await api.post("/ngsi-ld/v1/subscriptions", json=body, headers=headers)
        assert r.status_code == 201, r.text
        for i in range(5):
            r = await api.post("/ngsi-ld/v1/entities", json=sensor(f"urn:m:{i}", i),
                               headers=headers)
            assert r.status_code == 201
        # One write batch (one outbox row): its changes go out in one message.
        r = await api.post("/ngsi-ld/v1/entityOperations/upsert",
                           json=[sensor(f"urn:m:{i}", i) for i in range(5, 8)], headers=headers)
        assert r.status_code == 201, r.text
        got = []
        entities = []
        async with asyncio.timeout(10):
            async for message in client.messages:
                got.append(orjson.loads(message.payload))  # type: ignore[arg-type]
                entities.extend(got[-1]["body"]["data"])
                if len(entities) >= 8:
                    break
    assert [e["temperature"] for e in entities] == list(range(8))
    assert max(len(m["body"]["data"]) for m in got) >= 3
    first = got[0]
    assert first["body"]["type"] == "Notification"
    assert first["metadata"]["NGSILD-Tenant"] == tenant
    assert first["metadata"]["X-Origin"] == "nakhon-test"
    assert first["metadata"]["Content-Type"] == "application/json"
