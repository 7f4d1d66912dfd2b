"""Delivery in a process of its own: a server that only writes the outbox
(``NAKHON_NOTIFY_MODE=external``/``process``) and real ``nakhon notify`` processes on the same
SQLite file or PostgreSQL database.

Checked: every change reaches the receiver in order; subscriptions created through the API
after the delivering process started are picked up; the statistics the delivering process
saves are what the server's API shows; only one delivering process at a time; SIGKILL of the
delivering process mid-stream loses nothing (another one takes over: at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import _app_client
from tests.subscriptions.conftest import sensor, subscription
from tests.subscriptions.receiver import Receiver

SUBS = "/ngsi-ld/v1/subscriptions"
ENTITIES = "/ngsi-ld/v1/entities"
H = {"NGSILD-Tenant": "proc"}
DELIVERING = b"nakhon notify: delivering notifications"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nakhon.db'}"
        return
    from nakhon.storage.postgres.testing import server_available, temporary_database

    if not await server_available():
        pytest.skip("PostgreSQL is not reachable")
    async with temporary_database("nakhon_notify") as dsn:
        yield dsn


async def _notify(url: str, data_dir: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "NAKHON_LOG_LEVEL": "warning", "NAKHON_AUTH": "off"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nakhon", "notify", "--database-url", url,
        "--data-dir", str(data_dir), env=env, stdout=asyncio.subprocess.PIPE)


async def _delivering(proc: asyncio.subprocess.Process, seconds: float) -> bool:
    """Has ``proc`` said, within ``seconds``, that it delivers?"""
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), seconds)
    except TimeoutError:
        return False
    return line.startswith(DELIVERING)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for a parent that no longer reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _first_positions(entities: list[dict[str, Any]]) -> dict[str, int]:
    firsts: dict[str, int] = {}
    for pos, e in enumerate(entities):
        firsts.setdefault(e["id"], pos)
    return firsts


async def _stats(client: httpx.AsyncClient, sub_id: str, sent: int) -> dict[str, Any]:
    """The subscription's notification member once ``timesSent`` reached ``sent`` (the
    delivering process saves statistics with its cursors, a fraction of a second late)."""
    note: dict[str, Any] = {}
    for _ in range(100):
        r = await client.get(f"{SUBS}/{sub_id}", headers=H)
        assert r.status_code == 200, r.text
        note = r.json()["notification"]
        if note.get("timesSent", 0) >= sent:
            return note
        await asyncio.sleep(0.1)
    raise AssertionError(f"timesSent stayed below {sent}: {note}")


async def test_a_delivering_process_of_its_own(db_url: str, tmp_path: Path,
                                               receiver: Receiver) -> None:
    gen = _app_client(db_url, tmp_path, "off", notify_mode="external")
    client = await gen.__anext__()
    first = await _notify(db_url, tmp_path)
    second: asyncio.subprocess.Process | None = None
    try:
        assert client.app.state.subscriptions.dispatcher is None  # type: ignore[attr-defined]
        assert await _delivering(first, 30)
        # Created through the server's API after the delivering process started.
        r = await client.post(SUBS, json=subscription(receiver.url), headers=H)
        assert r.status_code == 201, r.text
        sub_id = r.headers["Location"].rsplit("/", 1)[-1]
        for n in range(20):
            r = await client.post(ENTITIES, json=sensor(f"urn:p:{n}", n), headers=H)
            assert r.status_code == 201, r.text
        got = await receiver.wait_for_entities(20, seconds=15)
        assert [e["id"] for e in got] == [f"urn:p:{n}" for n in range(20)]
        note = await _stats(client, sub_id, len(receiver.received))
        assert note["timesSent"] == len(receiver.received)
        assert note["status"] == "ok"
        assert note["lastNotification"] == note["lastSuccess"]
        assert "lastFailure" not in note

        # Only one delivering process at a time: a second one waits.
        second = await _notify(db_url, tmp_path)
        assert not await _delivering(second, 3)

        # SIGKILL mid-stream: the second takes over; nothing acknowledged is lost.
        written = [f"urn:p:{n}" for n in range(20)]

        async def write(k: int, count: int) -> None:
            for i in range(count):
                eid = f"urn:q:{k}:{i}"
                r = await client.post(ENTITIES, json=sensor(eid, i), headers=H)
                assert r.status_code == 201, r.text
                written.append(eid)
                await asyncio.sleep(0.005)

        writers = [asyncio.create_task(write(k, 60)) for k in range(4)]
        await receiver.wait_for_entities(60, seconds=20)
        os.kill(first.pid, signal.SIGKILL)
        await first.wait()
        assert await _delivering(second, 15)
        await asyncio.gather(*writers)
        for _ in range(300):
            if not set(written) - {e["id"] for e in receiver.entities()}:
                break
            await asyncio.sleep(0.1)
        firsts = _first_positions(receiver.entities())
        assert not set(written) - set(firsts), "changes lost with the delivering process"
        for k in range(4):  # each writer's changes in its order (first copies)
            mine = [firsts[f"urn:q:{k}:{i}"] for i in range(60)]
            assert mine == sorted(mine)
        # The new deliverer's statistics went on from the saved ones.
        await receiver.quiet(0.5)
        note = await _stats(client, sub_id, 2)
        assert note["timesSent"] <= len(receiver.received)
    finally:
        await _stop(first)
        if second is not None:
            await _stop(second)
        await gen.aclose()


async def test_serve_starts_and_stops_its_delivering_process(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    gen = _app_client(db_url, tmp_path, "off", notify_mode="process")
    client = await gen.__anext__()
    stopped = False
    try:
        child = client.app.state.notifier  # type: ignore[attr-defined]
        assert child.process is not None and child.process.returncode is None
        r = await client.post(SUBS, json=subscription(receiver.url), headers=H)
        assert r.status_code == 201, r.text
        r = await client.post(ENTITIES, json=sensor("urn:c:1", 1), headers=H)
        assert r.status_code == 201, r.text
        got = await receiver.wait_for_entities(1, seconds=30)
        assert got[0]["id"] == "urn:c:1"
        proc = child.process
        await gen.aclose()
        stopped = True
        assert proc.returncode is not None  # stopped with the server
    finally:
        if not stopped:
            await gen.aclose()


async def test_a_child_stops_when_its_server_is_killed(tmp_path: Path) -> None:
    """``nakhon notify`` started by a server (NAKHON_NOTIFY_PARENT) stops when that server dies
    without stopping it (SIGKILL): a restarted server must not wait behind an orphan."""
    url = f"sqlite:///{tmp_path / 'nakhon.db'}"
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import os, subprocess, sys\n"
        "env = {**os.environ, 'NAKHON_NOTIFY_PARENT': str(os.getpid()),"
        " 'NAKHON_LOG_LEVEL': 'warning'}\n"
        "p = subprocess.Popen([sys.executable, '-m', 'nakhon', 'notify', '--database-url',"
        f" {url!r}], env=env, stdout=subprocess.PIPE)\n"
        "print(p.pid, flush=True)\n"
        "sys.stdout.buffer.write(p.stdout.readline()); sys.stdout.flush()\n"
        "p.wait()\n",
        stdout=asyncio.subprocess.PIPE)
    assert parent.stdout is not None
    child = int(await asyncio.wait_for(parent.stdout.readline(), 30))
    try:
        assert (await asyncio.wait_for(parent.stdout.readline(), 30)).startswith(DELIVERING)
        parent.kill()
        await parent.wait()
        for _ in range(100):
            if not _alive(child):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("nakhon notify outlived the server that started it")
    finally:
        if parent.returncode is None:
            parent.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


async def test_api_updates_and_deletions_reach_the_delivering_process(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    other = Receiver()
    await other.start()
    gen = _app_client(db_url, tmp_path, "off", notify_mode="external")
    client = await gen.__anext__()
    proc = await _notify(db_url, tmp_path)
    try:
        assert await _delivering(proc, 30)
        r = await client.post(SUBS, json=subscription(receiver.url), headers=H)
        assert r.status_code == 201, r.text
        sub_id = r.headers["Location"].rsplit("/", 1)[-1]
        r = await client.post(ENTITIES, json=sensor("urn:u:1", 1), headers=H)
        assert r.status_code == 201
        await receiver.wait_for_entities(1, seconds=15)
        # A new endpoint, through the server's API: the delivering process follows it.
        r = await client.patch(f"{SUBS}/{sub_id}", headers=H,
                               json={"notification": {"endpoint": {"uri": other.url}}})
        assert r.status_code == 204, r.text
        await asyncio.sleep(1.0)  # the deliverer looks for edits every 0.5 s
        r = await client.post(ENTITIES, json=sensor("urn:u:2", 2), headers=H)
        assert r.status_code == 201
        got = await other.wait_for_entities(1, seconds=15)
        assert [e["id"] for e in got] == ["urn:u:2"]
        assert [e["id"] for e in receiver.entities()] == ["urn:u:1"]
        # Deleted through the API: nothing more is sent.
        r = await client.delete(f"{SUBS}/{sub_id}", headers=H)
        assert r.status_code == 204
        await asyncio.sleep(1.0)
        r = await client.post(ENTITIES, json=sensor("urn:u:3", 3), headers=H)
        assert r.status_code == 201
        await other.quiet(1.0)
        assert [e["id"] for e in other.entities()] == ["urn:u:2"]
    finally:
        await _stop(proc)
        await gen.aclose()
        await other.stop()
