"""Windowed alert rules judge from the stored history at once: after a restart, after a backfill.

Both engines. A day of hourly PM2.5 readings is stored first; then a *new* StoredHistory (what a
restarted process has) must raise the 24-hour alert on the next reading, where a fresh
MemoryHistory cannot (it has seen one hour of the 18 the rule needs).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from nakhon.broker.service import Broker
from nakhon.core.auth import SYSTEM
from nakhon.domains.alert_service import MemoryHistory, alert_id, evaluate_alerts
from nakhon.domains.recent import StoredHistory
from nakhon.storage.history_base import HistoryStore
from tests.conftest import Api
from tests.domains.test_api import ENTITIES, alerts, broker_of, station

PM25 = "https://uri.etsi.org/ngsi-ld/default-context/pm25"


async def store_day(api: Api, headers: dict[str, str], eid: str, values: list[float],
                    start: datetime) -> None:
    for h, value in enumerate(values):
        body = station(eid, value, start + timedelta(hours=h))
        r = (await api.post(f"{ENTITIES}/{eid}/attrs", json=body, headers=headers) if h
             else await api.post(ENTITIES, json=body, headers=headers))
        assert r.status_code in (201, 204), r.text


def stored(broker: Broker) -> StoredHistory:
    return StoredHistory(cast(HistoryStore, broker.storage))


@pytest.mark.usefixtures("manual_alerts")
async def test_a_restarted_process_raises_the_24h_alert_from_stored_history(
        api: Api, tenant: str, headers: dict[str, str]) -> None:
    broker = broker_of(api)
    eid = "urn:ngsi-ld:AirQualityObserved:restart-01"
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    await store_day(api, headers, eid, [45.0] * 24, start)  # no evaluation while storing
    entity = await broker.retrieve_entity(SYSTEM, tenant, eid)
    now = start + timedelta(hours=23, minutes=1)
    # A process that only remembers what it saw since it started: not enough hours yet.
    assert await evaluate_alerts(broker, tenant, [entity], now=now, history=MemoryHistory()) == []
    assert await alerts(api, tenant) == []
    history = stored(broker)
    decided = await evaluate_alerts(broker, tenant, [entity], now=now, history=history)
    assert [(d.rule_id, d.active) for d in decided] == [("pm25-24h", True)]
    assert [a["id"] for a in await alerts(api, tenant)] == [alert_id("pm25-24h", eid)]
    samples = await history.recent(tenant, eid, PM25, start)
    assert [v for _, v in samples] == [45.0] * 24  # every stored hour, once, oldest first
    assert history.loaded == 1
    # The next question is answered from memory: no second read of the same series.
    await history.recent(tenant, eid, PM25, start)
    assert history.loaded == 1


@pytest.mark.usefixtures("manual_alerts")
async def test_stored_history_stays_within_its_tenant_and_series(
        api: Api, tenant: str, headers: dict[str, str]) -> None:
    broker = broker_of(api)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    await store_day(api, headers, "urn:ngsi-ld:AirQualityObserved:s-a", [10.0, 20.0, 30.0], start)
    await store_day(api, headers, "urn:ngsi-ld:AirQualityObserved:s-b", [99.0], start)
    history = stored(broker)
    got = await history.recent(tenant, "urn:ngsi-ld:AirQualityObserved:s-a", PM25, start)
    assert [(t - start, v) for t, v in got] == [
        (timedelta(hours=0), 10.0), (timedelta(hours=1), 20.0), (timedelta(hours=2), 30.0)]
    assert await history.recent("another-city", "urn:ngsi-ld:AirQualityObserved:s-a", PM25,
                                start) == []
    # Values older than asked for are not returned (the window starts at "since").
    assert [v for _, v in await history.recent(
        tenant, "urn:ngsi-ld:AirQualityObserved:s-a", PM25, start + timedelta(hours=1))] == [
        20.0, 30.0]
