"""Two Nakhon processes on one PostgreSQL database: exactly one delivers notifications, and the
other takes over when it goes away (a session advisory lock held by the leader)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import _app_client
from tests.subscriptions.conftest import sensor, subscription
from tests.subscriptions.receiver import Receiver

SUBS = "/ngsi-ld/v1/subscriptions"
ENTITIES = "/ngsi-ld/v1/entities"


@pytest.mark.postgres
async def test_one_process_delivers_and_another_takes_over(
    pg_database_3: str, tmp_path: Path, receiver: Receiver
) -> None:
    h = {"NGSILD-Tenant": "leader"}
    first = _app_client(pg_database_3, tmp_path / "a", "off")
    a = await first.__anext__()
    second = _app_client(pg_database_3, tmp_path / "b", "off")
    b = await second.__anext__()
    try:
        r = await a.post(SUBS, json=subscription(receiver.url), headers=h)
        assert r.status_code == 201, r.text
        await b.app.state.subscriptions._refresh()  # type: ignore[attr-defined]
        for n in range(5):
            r = await (a if n % 2 else b).post(ENTITIES, json=sensor(f"urn:s:{n}", n), headers=h)
            assert r.status_code == 201
        # The non-leader's writes wake no local worker: the leader finds them by polling
        # (every 10 s) unless one of its own writes wakes it first.
        await receiver.wait_for_entities(5, seconds=15)
        await receiver.quiet(1.0)
        assert sorted(e["id"] for e in receiver.entities()) == [f"urn:s:{n}" for n in range(5)]
        leaders = [
            c.app.state.subscriptions.dispatcher.leader.is_set()  # type: ignore[attr-defined]
            for c in (a, b)
        ]
        assert sorted(leaders) == [False, True]
        # The leader stops; the other process takes over and delivers what comes next.
        (gone, gen_gone), (stay, _) = (
            ((a, first), (b, second)) if leaders[0] else ((b, second), (a, first))
        )
        await gen_gone.aclose()
        r = await stay.post(ENTITIES, json=sensor("urn:s:late", 9), headers=h)
        assert r.status_code == 201
        await receiver.wait_for_entities(6, seconds=20)
        assert stay.app.state.subscriptions.dispatcher.leader.is_set()  # type: ignore[attr-defined]
        assert "urn:s:late" in {e["id"] for e in receiver.entities()}
        del gone
    finally:
        for gen in (first, second):
            await gen.aclose()
