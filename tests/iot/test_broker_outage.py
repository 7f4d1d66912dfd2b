"""A broker outage: Nakhon reconnects with backoff, subscribes again and ingest resumes.

The test runs a private Mosquitto (its own port, persistence in a temporary directory) so it can
stop and restart the broker without disturbing anything else on the machine."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from tests.iot.conftest import provision, start_app, stop_app, wait_for

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class PrivateBroker:
    def __init__(self, directory: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {directory}/\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError("private mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto binary not installed")
    b = PrivateBroker(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.stop()


async def _seq(client: httpx.AsyncClient, tenant: str) -> Any:
    r = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:o1",
                         headers={"NGSILD-Tenant": tenant})
    return r.json().get("seq", {}).get("value") if r.status_code == 200 else None


async def _publish(port: int, topic: str, payloads: list[str]) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"dev-{uuid.uuid4().hex[:8]}") as c:
        for payload in payloads:
            await c.publish(topic, payload, qos=1)


async def test_ingest_survives_a_broker_restart(
    broker: PrivateBroker, iot_db: str, tmp_path: Path, tenant: str
) -> None:
    app, client = await start_app(iot_db, tmp_path / "data", mqtt_url=broker.url,
                                  mqtt_client_id=f"nakhon-outage-{uuid.uuid4().hex[:8]}",
                                  mqtt_reconnect_max=1.0, iot_batch_wait_ms=2.0)
    mqtt = app.state.iot.mqtt
    try:
        await wait_for(lambda: _true(mqtt.connected.is_set()), limit=10)
        key = f"k{uuid.uuid4().hex[:10]}"
        await provision(client, tenant, key, [{"device_id": "o1", "attributes": [
            {"object_id": "n", "name": "seq", "type": "Integer"}]}])
        topic = f"/{key}/o1/attrs"
        await _publish(broker.port, topic, ['{"n": 1}'])
        await wait_for(lambda: _equals(client, tenant, 1), limit=10)

        broker.stop()  # the outage
        await wait_for(lambda: _true(not mqtt.connected.is_set()), limit=10)
        await asyncio.sleep(0.5)  # a reconnect attempt or two fails meanwhile
        broker.start()
        await wait_for(lambda: _true(mqtt.connected.is_set()), limit=15)
        await _publish(broker.port, topic, [f'{{"n": {i}}}' for i in range(2, 21)])
        await wait_for(lambda: _equals(client, tenant, 20), limit=15)
    finally:
        await stop_app(client)


async def _true(value: bool) -> bool:
    return value


async def _equals(client: httpx.AsyncClient, tenant: str, value: int) -> bool:
    return bool(await _seq(client, tenant) == value)
