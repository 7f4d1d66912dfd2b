"""Dead letters through the app, on both engines: they survive a restart, a writer sees only
its tenants', and a hostile device flooding Mosquitto with bad messages neither stops nor slows
the ingest of the good ones, while storage takes a few batched writes and keeps the bound."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import httpx

from nakhon.iot.stats import mask_apikey
from tests.iot.conftest import (
    BASE,
    forget_session,
    provision,
    publish,
    start_app,
    stop_app,
    wait_for,
)

ADMIN = "/nakhon/v1/admin"


def _key() -> str:
    return f"k{uuid.uuid4().hex[:12]}"


async def _letters(client: httpx.AsyncClient, query: str = "limit=1000",
                   headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    r = await client.get(f"{BASE}/deadLetters?{query}", headers=headers)
    assert r.status_code == 200, r.text
    body: list[dict[str, Any]] = r.json()
    return body


async def test_dead_letters_survive_a_restart(iot_db: str, tmp_path: Path, tenant: str) -> None:
    key, dev = _key(), f"d{uuid.uuid4().hex[:8]}"
    _, client = await start_app(iot_db, tmp_path)
    try:
        await provision(client, tenant, key, [{"device_id": dev}])
        for i in range(3):
            r = await client.post(f"/iot/json?k={key}&i={dev}", content=b"{broken %d" % i)
            assert r.status_code == 400
        r = await client.post(f"/iot/json?k={key}&i=ghost-{dev}", content=b'{"a": 1}')
        assert r.status_code == 404
    finally:
        await stop_app(client)  # nothing read before: the stop itself writes what is pending
    _, client = await start_app(iot_db, tmp_path)
    try:
        letters = [d for d in await _letters(client) if dev in (d["device_id"] or "")]
        assert [d["reason"] for d in letters] == ["unknown-device"] + ["bad-payload"] * 3
        assert [d["payload"] for d in letters[1:]] == ["{broken 2", "{broken 1", "{broken 0"]
        first = letters[-1]
        assert first["tenant"] == tenant and first["transport"] == "http"
        assert first["apikey"] == mask_apikey(key) and key not in str(letters)
        assert first["topic"] == "/iot/json" and first["at"].endswith("Z")
        assert set(first) == {"at", "reason", "detail", "transport", "tenant", "apikey",
                              "device_id", "topic", "payload"}
        # Paging happens in storage, newest first.
        page = await _letters(client, "limit=2&offset=1")
        assert len(page) == 2
        assert (await client.get(f"{BASE}/deadLetters?limit=-1")).status_code == 400
    finally:
        await stop_app(client)


async def test_a_nul_character_is_a_dead_letter_not_a_stuck_batch(
    iot_db: str, tmp_path: Path, tenant: str
) -> None:
    """PostgreSQL cannot store NUL in text: such a payload must be refused at the edge, or its
    batch would be retried forever and stop all ingest."""
    key = _key()
    _, client = await start_app(iot_db, tmp_path)
    try:
        await provision(client, tenant, key, [{"device_id": "n1"}])
        for body in (b'{"x": "a\\u0000b"}', b"x|a\x00b"):
            r = await asyncio.wait_for(client.post(f"/iot/d?k={key}&i=n1", content=body), 10)
            assert r.status_code == 400, r.text
        r = await asyncio.wait_for(client.post(f"/iot/json?k={key}&i=n1", content=b'{"x": 1}'),
                                   10)
        assert r.status_code == 200
        metrics = (await client.get(f"{BASE}/metrics")).json()
        assert metrics.get("retries", 0) == 0
        letters = [d for d in await _letters(client, "limit=2") if d["device_id"] == "n1"]
        assert [d["detail"] for d in letters] == ["the payload holds a NUL character"] * 2
        assert "\x00" not in letters[0]["payload"]
    finally:
        await stop_app(client)


async def test_a_writer_sees_only_its_tenants_letters(secured_api: Any, tenant: str) -> None:
    api = secured_api
    admin = {"Authorization": f"Bearer {api.admin_token}"}
    other = tenant + "x"
    mine_key, other_key = _key(), _key()
    for t, key in ((tenant, mine_key), (other, other_key)):
        r = await api.post(f"{BASE}/services", headers={**admin, "NGSILD-Tenant": t},
                           json={"apikey": key, "entity_type": "Thing"})
        assert r.status_code == 201, r.text
        r = await api.post(f"{BASE}/devices", headers={**admin, "NGSILD-Tenant": t},
                           json={"device_id": "d1", "apikey": key})
        assert r.status_code == 201, r.text
        assert (await api.post(f"/iot/json?k={key}&i=d1", content=b"[")).status_code == 400
    assert (await api.post(f"/iot/json?k=no{mine_key}&i=d1", content=b"{}")).status_code == 404
    r = await api.post(f"{ADMIN}/credentials", headers=admin,
                       json={"name": "gw", "role": "writer", "tenants": [tenant]})
    writer = {"Authorization": f"Bearer {r.json()['token']}"}
    seen = await _letters(api, headers=writer)
    assert seen and {d["tenant"] for d in seen} == {tenant}
    everything = await _letters(api, headers=admin)
    tenants = {d["tenant"] for d in everything}
    assert {tenant, other, None} <= tenants
    assert mine_key not in str(everything) and other_key not in str(everything)
    assert (await api.get(f"{BASE}/deadLetters")).status_code == 401


async def test_a_hostile_flood_never_stops_the_loop(
    iot_db: str, tmp_path: Path, mosquitto: str, tenant: str
) -> None:
    """2,000 bad messages (garbage, NUL bytes, 64 KB payloads, giant keys, unknown devices,
    someone else's key) interleaved with a good device's readings: every reading arrives, every
    bad message is counted, storage keeps exactly the bound and got a handful of writes."""
    client_id = f"nakhon-test-{uuid.uuid4().hex[:10]}"
    app, client = await start_app(iot_db, tmp_path, mqtt_url=mosquitto, mqtt_client_id=client_id,
                                  iot_batch_wait_ms=2.0, iot_dead_letters_max=100)
    try:
        await wait_for(lambda: _connected(app), limit=10)
        key, stranger = _key(), _key()
        await provision(client, tenant, key, [
            {"device_id": "good", "attributes": [{"object_id": "n", "name": "seq",
                                                 "type": "Integer"}]},
            {"device_id": "victim"}])
        await provision(client, tenant + "s", stranger, [{"device_id": "other"}])
        before = (await client.get(f"{BASE}/metrics")).json()
        hostile = [
            (f"/{key}/victim/attrs", b"\x00\xff{{{"),
            (f"/json/{key}/victim/attrs", os.urandom(65536)),
            (f"/{'K' * 3000}/victim/attrs", b"t|1"),
            (f"/{key}/ghost{'g' * 500}/attrs", b"t|1"),
            (f"/{stranger}/victim/attrs", b"t|1"),
            (f"/ul/{key}/victim/attrs", b"|||"),
            (f"/json/{key}/victim/attrs", b'{"a": "\\u0000"}' + b"]" * 1000),
            (f"/json/{key}/victim/attrs", b'{"a": "\\u0000"}'),
            (f"/{key}/victim/attrs/x", b"\x00"),
        ]
        bursts, per_burst = 4, 500
        loop = asyncio.get_running_loop()
        started = loop.time()
        for b in range(bursts):
            messages = [hostile[i % len(hostile)] for i in range(per_burst)]
            messages.insert(per_burst // 2, (f"/{key}/good/attrs", f'{{"n": {b + 1}}}'.encode()))
            await publish(messages, qos=1)
            # Mosquitto drops QoS 1 beyond max_queued_messages for a slow consumer: pace it.
            await wait_for(lambda n=b: _received(client, before, (n + 1) * (per_burst + 1)),
                           limit=60)
        elapsed = loop.time() - started

        async def all_good() -> bool:
            r = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:good",
                                 headers={"NGSILD-Tenant": tenant})
            return r.status_code == 200 and r.json().get("seq", {}).get("value") == bursts

        await wait_for(all_good, limit=10)
        letters = await _letters(client)  # (reading writes what is pending first)
        metrics = (await client.get(f"{BASE}/metrics")).json()
        assert metrics["rejectedTotal"] - before.get("rejectedTotal", 0) == bursts * per_burst
        assert metrics["written"] - before.get("written", 0) == bursts
        assert len(letters) == 100  # the bound, oldest evicted
        assert all(len(v) <= 512 for d in letters for v in d.values() if isinstance(v, str))
        assert key not in str(letters) and stranger not in str(letters)
        assert "K" * 8 not in str(letters)
        flushes = metrics["deadLetterFlushes"]
        assert 1 <= flushes <= elapsed / 0.1 + 3, (flushes, elapsed)
        assert metrics["deadLetterWriteErrors"] == 0
        assert (metrics["deadLettersStored"] + metrics["deadLettersDropped"]
                + metrics["deadLettersPending"]) == bursts * per_burst
    finally:
        await stop_app(client)
        await forget_session(client_id)


async def _connected(app: Any) -> bool:
    return bool(app.state.iot.mqtt.connected.is_set())


async def _received(client: httpx.AsyncClient, before: dict[str, Any], n: int) -> bool:
    metrics = (await client.get(f"{BASE}/metrics")).json()
    return bool(metrics.get("received", 0) - before.get("received", 0) >= n)
