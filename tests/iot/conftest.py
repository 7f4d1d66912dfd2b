"""IoT fixtures: a real Mosquitto, an app with MQTT ingest on, registry helpers.

Mosquitto is expected at 127.0.0.1:1883 (``NAKHON_TEST_MQTT_URL`` overrides). Without it the
MQTT tests skip — or fail when NAKHON_REQUIRE_ALL=1, as in CI.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import httpx
import pytest

from nakhon.app import create_app
from nakhon.config import load_settings

MQTT_URL = os.environ.get("NAKHON_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
REQUIRE_ALL = os.environ.get("NAKHON_REQUIRE_ALL") == "1"
BASE = "/nakhon/v1/iot"


def mqtt_host_port() -> tuple[str, int]:
    parts = urlsplit(MQTT_URL)
    return parts.hostname or "127.0.0.1", parts.port or 1883


@pytest.fixture(scope="session")
def mosquitto() -> str:
    """The broker URL; skip (or fail under NAKHON_REQUIRE_ALL=1) when nothing listens."""
    try:
        socket.create_connection(mqtt_host_port(), timeout=2).close()
    except OSError:
        if REQUIRE_ALL:
            pytest.fail(f"Mosquitto is required (NAKHON_REQUIRE_ALL=1) but {MQTT_URL} is down")
        pytest.skip(f"Mosquitto not reachable at {MQTT_URL}")
    return MQTT_URL


@pytest.fixture
def iot_db(engine_url: str, tmp_path: Path) -> str:
    """The engine under test; SQLite gets a file of its own so two apps never share a writer."""
    if engine_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'iot.db'}"
    return engine_url


AppFactory = Callable[[], Any]


async def start_app(url: str, data_dir: Path, **overrides: Any) -> tuple[Any, httpx.AsyncClient]:
    settings = load_settings(env={}, database_url=url, data_dir=data_dir, auth="off",
                             **overrides)
    app = create_app(settings)
    ctx = app.router.lifespan_context(app)
    await ctx.__aenter__()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url="http://nakhon.test")
    client.app = app  # type: ignore[attr-defined]
    client._lifespan = ctx  # type: ignore[attr-defined]
    return app, client


async def stop_app(client: httpx.AsyncClient) -> None:
    await client.aclose()
    await client._lifespan.__aexit__(None, None, None)  # type: ignore[attr-defined]


async def forget_session(client_id: str) -> None:
    """Remove a persistent MQTT session (clean_session=True connect) so it queues no more."""
    host, port = mqtt_host_port()
    async with aiomqtt.Client(host, port, identifier=client_id, clean_session=True):
        pass


async def publish(messages: list[tuple[str, bytes | str]], qos: int = 1) -> None:
    host, port = mqtt_host_port()
    async with aiomqtt.Client(host, port, identifier=f"dev-{uuid.uuid4().hex[:8]}") as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=qos)


async def wait_for(check: Callable[[], Awaitable[bool]], limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def provision(client: httpx.AsyncClient, tenant: str, apikey: str,
                    devices: list[dict[str, Any]], **group: Any) -> None:
    """A service group with ``apikey`` for ``tenant`` and its devices."""
    headers = {"NGSILD-Tenant": tenant, "Content-Type": "application/json"}
    body = {"apikey": apikey, "entity_type": "AirQualityObserved", **group}
    r = await client.post(f"{BASE}/services", json={"services": [body]}, headers=headers)
    assert r.status_code == 201, r.text
    devices = [{"apikey": apikey, **d} for d in devices]
    r = await client.post(f"{BASE}/devices", json={"devices": devices}, headers=headers)
    assert r.status_code == 201, r.text
