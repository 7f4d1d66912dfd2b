"""`nakhon demo` end to end, in process: a fresh data directory, a small city, a restart.

The app is the real one (``create_app``, SQLite, authentication on); the demo city is attached
as ``nakhon demo`` attaches it. Each test starts from its own empty data directory.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from nakhon.app import create_app
from nakhon.config import load_settings
from nakhon.demo.city import DemoCity, DemoOptions, attach
from nakhon.demo.kinds import DOMAINS, KINDS

SMALL = DemoOptions(devices=30, days=1, history_step=900, seed=7)


@asynccontextmanager
async def running(
    data_dir: Path, options: DemoOptions = SMALL
) -> AsyncIterator[tuple[httpx.AsyncClient, DemoCity, dict[str, str]]]:
    settings = load_settings(env={}, data_dir=data_dir)
    app = create_app(settings)
    city = attach(app, options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo.test") as client:
            await asyncio.wait_for(city.status.ready.wait(), timeout=30)
            assert city.status.phase == "live", city.status.error
            token = (data_dir / "admin-token").read_text().strip()
            yield client, city, {"Authorization": f"Bearer {token}"}


async def _entity(client: httpx.AsyncClient, eid: str) -> dict[str, Any]:
    r = await client.get(f"/ngsi-ld/v1/entities/{eid}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _duplicates(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT entity_id, attr, observed_at, count(*) FROM history_keyed"
            " WHERE observed_at IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1"
        ).fetchall()


async def test_fresh_start_provisions_backfills_and_reports_live(tmp_path: Path) -> None:
    began = time.perf_counter()
    async with running(tmp_path) as (client, city, auth):
        assert time.perf_counter() - began < 20

        # Every device is in the real registry, under its kind's service group.
        r = await client.get("/nakhon/v1/iot/devices?limit=1000", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["count"] == 30
        r = await client.get("/nakhon/v1/iot/services", headers=auth)
        assert {g["apikey"] for g in r.json()["services"]} == {k.apikey for k in KINDS}

        # Entities of all seven domains, counted by the domain catalogue.
        for domain in DOMAINS:
            r = await client.get(f"/nakhon/v1/domains/{domain}")
            assert r.status_code == 200, r.text
            assert r.json()["entityCount"] > 0, domain

        # A day of history every 15 minutes, through the temporal API.
        aq = "urn:ngsi-ld:AirQualityObserved:cco-aq-0001"
        r = await client.get(f"/ngsi-ld/v1/temporal/entities/{aq}?attrs=pm25&lastN=200")
        assert r.status_code == 200, r.text
        assert 94 <= len(r.json()["pm25"]) <= 97
        assert city.status.backfill.instances > 30 * 96

        # Live readings go through the ingest path: counted by the IoT metrics.
        before = (await _entity(client, aq))["pm25"]["observedAt"]
        written = (
            (await client.get("/nakhon/v1/iot/metrics", headers=auth)).json().get("written", 0)
        )
        assert await city.live.tick_all() == 30
        metrics = (await client.get("/nakhon/v1/iot/metrics", headers=auth)).json()
        assert metrics["written"] == written + 30 and metrics["rejectedTotal"] == 0
        assert (await _entity(client, aq))["pm25"]["observedAt"] > before
        light = await _entity(client, "urn:ngsi-ld:Streetlight:cco-light-0001")  # UltraLight
        assert light["powerState"]["value"] in ("on", "off")
        assert light["energyConsumed"]["unitCode"] == "KWH"

        # The live loop itself keeps reporting (many times faster here).
        city.live.speed = 600.0
        runner = asyncio.create_task(city.live.run())
        await asyncio.sleep(1.0)
        runner.cancel()
        assert city.live.stats.messages > 30 + 30
    assert _duplicates(tmp_path / "nakhon.db") == []


async def test_second_run_does_not_duplicate(tmp_path: Path) -> None:
    async with running(tmp_path) as (client, city, _):
        first = city.status.backfill.instances
        assert city.status.provisioned == 30
        await city.live.tick_all()
    with sqlite3.connect(tmp_path / "nakhon.db") as conn:
        rows = conn.execute("SELECT count(*) FROM attr_history").fetchone()[0]
        entities = conn.execute("SELECT count(*) FROM entities").fetchone()[0]
    second_start = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    async with running(tmp_path) as (client, city, auth):
        # Nothing to provision again; at most a reading or so of the few seconds' gap.
        assert city.status.provisioned == 0
        assert city.status.backfill.instances < first / 50
        r = await client.get("/nakhon/v1/iot/devices?limit=1000", headers=auth)
        assert r.json()["count"] == 30
    with sqlite3.connect(tmp_path / "nakhon.db") as conn:
        # The past holds exactly what it held plus the backfilled gap; only live readings
        # (observed after the second start) are new beyond that.
        past = conn.execute(
            "SELECT count(*) FROM attr_history WHERE observed_at IS NULL OR observed_at < ?",
            (second_start,),
        ).fetchone()[0]
        assert conn.execute("SELECT count(*) FROM entities").fetchone()[0] == entities
    assert past == rows + city.status.backfill.instances
    assert _duplicates(tmp_path / "nakhon.db") == []


async def test_restart_fills_the_gap(tmp_path: Path) -> None:
    """Stopped for a while, the city comes back with the missing readings, not more."""
    async with running(tmp_path):
        pass
    async with running(tmp_path) as (_, city, _):
        # Pretend six hours went by: prepare again up to "now + 6 h".
        await city.prepare(now=time.time() + 6 * 3600)
        assert city.status.provisioned == 0
        attrs = sum(len(d.kind.attrs) for d in city.devices)
        # 6 h every 15 min: 24 readings per device (± the one at either edge).
        assert 23 * attrs <= city.status.backfill.instances <= 25 * attrs
    assert _duplicates(tmp_path / "nakhon.db") == []
