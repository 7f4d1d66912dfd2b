"""``nakhon devices dead-letters`` reads what the servers stored, on both engines."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from typer.testing import CliRunner

from nakhon import cli
from nakhon.iot.stats import BAD_PAYLOAD, UNKNOWN_APIKEY, IngestStats
from nakhon.storage import storage_for


async def _record(url: str, tenant: str, device: str) -> None:
    storage = storage_for(url)
    await storage.open()
    try:
        stats = IngestStats(1000, storage)
        stats.reject(BAD_PAYLOAD, "not JSON", transport="http", payload=b"{", tenant=tenant,
                     apikey="abcdefgh12345678", device_id=device, topic="/iot/json")
        stats.reject(UNKNOWN_APIKEY, "no service group", transport="mqtt", payload=b"t|1",
                     apikey="zzzzzzzz12345678", device_id=device,
                     topic=f"/zzzzzzzz12345678/{device}/attrs")
        await stats.stop()  # writes what is pending
    finally:
        await storage.close()


def test_cli_lists_stored_dead_letters(iot_db: str, tmp_path: Path) -> None:
    tenant, device = f"t{uuid.uuid4().hex[:8]}", f"d{uuid.uuid4().hex[:8]}"
    asyncio.run(_record(iot_db, tenant, device))
    env = {"NAKHON_DATABASE_URL": iot_db}
    args = ["devices", "dead-letters", "--data-dir", str(tmp_path)]
    result = CliRunner().invoke(cli.app, [*args, "--limit", "2"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "unknown-apikey" in lines[0] and f"/zzzz…/{device}/attrs" in lines[0]
    assert "bad-payload" in lines[1] and f"tenant='{tenant}'" in lines[1]
    assert "apikey=abcd…" in lines[1] and lines[-1] == "2 dead letter(s)"
    assert "12345678" not in result.output
    result = CliRunner().invoke(cli.app, [*args, "--tenant", tenant], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "1 dead letter(s)" and device in result.output
