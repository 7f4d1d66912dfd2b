"""A server killed with SIGKILL mid-stream loses no notification of an acknowledged write.

``nakhon serve`` runs in a subprocess on a SQLite file with NAKHON_AUTH=off; the test writes
entities from several concurrent clients, kills the server with SIGKILL while writes are in
flight, restarts it on the same data directory and checks that the receiver eventually got a
notification for every write the server had acknowledged (201).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.subscriptions.conftest import sensor, subscription
from tests.subscriptions.receiver import Receiver, free_port


def _start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NAKHON_AUTH": "off", "NAKHON_DATA_DIR": str(data_dir),
           "NAKHON_PORT": str(port), "NAKHON_DATABASE_URL": "", "NAKHON_LOG_LEVEL": "warning"}
    return subprocess.Popen([sys.executable, "-m", "nakhon", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _ready(client: httpx.AsyncClient) -> None:
    for _ in range(200):
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the server did not start")


@pytest.mark.slow
async def test_sigkill_mid_stream_loses_no_notification(
    tmp_path: Path, receiver: Receiver
) -> None:
    port = free_port()
    proc = _start(tmp_path, port)
    acknowledged: set[str] = set()
    enough = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            await _ready(client)
            r = await client.post("/ngsi-ld/v1/subscriptions", json=subscription(receiver.url))
            assert r.status_code == 201, r.text

            async def writer(k: int) -> None:
                for i in range(10_000):
                    eid = f"urn:crash:{k}:{i}"
                    try:
                        r = await client.post("/ngsi-ld/v1/entities", json=sensor(eid, i))
                    except httpx.TransportError:
                        return  # the server died under us: this write is unacknowledged
                    if r.status_code == 201:
                        acknowledged.add(eid)
                        if len(acknowledged) >= 300:
                            enough.set()

            writers = [asyncio.create_task(writer(k)) for k in range(8)]
            await asyncio.wait_for(enough.wait(), 60)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            await asyncio.gather(*writers)
        assert len(acknowledged) >= 300
        proc = _start(tmp_path, port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            await _ready(client)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while loop.time() < deadline:
                seen = {e["id"] for e in receiver.entities()}
                if acknowledged <= seen:
                    break
                await asyncio.sleep(0.2)
            missing = acknowledged - {e["id"] for e in receiver.entities()}
            assert not missing, f"{len(missing)} acknowledged writes never notified"
            # In order per subscription: each entity was written once, so each writer's ids
            # must arrive in the order that writer wrote them (first copy of each).
            firsts: dict[str, int] = {}
            for pos, e in enumerate(receiver.entities()):
                firsts.setdefault(e["id"], pos)
            for k in range(8):
                mine = sorted((int(i.split(":")[3]), firsts[i]) for i in firsts
                              if i.startswith(f"urn:crash:{k}:"))
                assert [p for _, p in mine] == sorted(p for _, p in mine)
    finally:
        proc.kill()
        proc.wait(10)
