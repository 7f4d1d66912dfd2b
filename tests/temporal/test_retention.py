"""Retention rules: parsing, precedence, and the prune job on both engines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from nakhon.core.auth import ANONYMOUS, SYSTEM
from nakhon.core.errors import BadRequestData, NgsiError
from nakhon.storage.history_base import Selector
from nakhon.temporal.model import Period
from nakhon.temporal.retention import parse_rules, prune
from tests.conftest import Api
from tests.temporal.conftest import T, get

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def test_parse_rules() -> None:
    rules = parse_rules(" P2Y; tenant:bkk=P1Y; type:AirQualityObserved=P90D;"
                        " tenant:bkk,attr:pm25=PT12H ;")
    assert [r.selector for r in rules] == [
        Selector(), Selector(tenant="bkk"), Selector(entity_type="AirQualityObserved"),
        Selector(tenant="bkk", attr="pm25"),
    ]
    assert rules[0].period == Period(months=24)
    assert rules[3].period == Period(seconds=12 * 3600)
    assert [r.rank for r in rules] == [0, 1, 2, 5]
    assert rules[1].cutoff(NOW) == datetime(2023, 6, 1, tzinfo=UTC)
    for bad in ("forever", "tenant=P1D", "colour:red=P1D", "P0D", "tenant:x=P1M1D"):
        with pytest.raises(BadRequestData):
            parse_rules(bad)


async def test_prune_follows_the_most_specific_rule(api: Api, headers: dict[str, str],
                                                    tenant: str) -> None:
    for eid, etype in (("urn:ngsi-ld:A:1", "Air"), ("urn:ngsi-ld:W:1", "Water")):
        body = {"id": eid, "type": etype, **{
            attr: [{"type": "Property", "value": m, "observedAt": f"2024-0{m}-01T00:00:00Z"}
                   for m in range(1, 6)] for attr in ("pm25", "level")}}
        r = await api.post(T, json=body, headers=headers)
        assert r.status_code == 201, r.text
    storage = api.client.app.state.storage  # type: ignore[attr-defined]
    access = api.client.app.state.api.access  # type: ignore[attr-defined]
    rules = parse_rules(
        f"P1M; tenant:{tenant}=P3M; tenant:{tenant},type:Water=P45D; attr:pm25=P1Y"
    )
    with pytest.raises(NgsiError):
        await prune(storage, access, ANONYMOUS, rules, NOW)
    deleted = await prune(storage, access, SYSTEM, rules, NOW)
    assert deleted >= 5

    async def months(eid: str, attr: str) -> list[int]:
        body = await get(api, headers, f"{T}/{eid}?attrs={attr}")
        return [i["value"] for i in body.get(attr, [])]

    assert await months("urn:ngsi-ld:A:1", "pm25") == [1, 2, 3, 4, 5]  # attr rule: a year
    assert await months("urn:ngsi-ld:W:1", "pm25") == [1, 2, 3, 4, 5]
    assert await months("urn:ngsi-ld:A:1", "level") == [3, 4, 5]  # tenant rule: 3 months
    assert await months("urn:ngsi-ld:W:1", "level") == [5]  # tenant+type rule: 45 days


async def test_the_running_platform_prunes_on_its_own(
    api: Api, headers: dict[str, str], tenant: str
) -> None:
    """RetentionTask: the app's periodic sweep with the configured rules (here one tick)."""
    from nakhon.temporal.retention_task import RetentionTask

    body = {"id": "urn:ngsi-ld:A:9", "type": "Air", "pm25": [
        {"type": "Property", "value": v, "observedAt": at}
        for v, at in ((1, "2001-01-01T00:00:00Z"), (2, "2099-01-01T00:00:00Z"))]}
    assert (await api.post(T, json=body, headers=headers)).status_code == 201
    app = api.client.app  # type: ignore[attr-defined]
    task = RetentionTask(app.state.storage, app.state.api.access,
                         parse_rules(f"tenant:{tenant}=P1Y"), interval=3600)
    task.start()  # runs one sweep at once, then sleeps for the interval
    try:
        for _ in range(50):
            got = await get(api, headers, f"{T}/urn:ngsi-ld:A:9?attrs=pm25")
            if [i["value"] for i in got.get("pm25", [])] == [2]:
                break
            await asyncio.sleep(0.05)
        assert [i["value"] for i in got.get("pm25", [])] == [2]
    finally:
        await task.stop()
    idle = RetentionTask(app.state.storage, app.state.api.access, [], interval=3600)
    idle.start()  # no rules: nothing runs
    assert idle._task is None
