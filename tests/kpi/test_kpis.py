"""Every KPI against values computed independently from the generated series, on both engines;
incremental recomputation equals a full one; periods across the fiscal-year boundary; the API
and the KeyPerformanceIndicator entities."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from nakhon.broker.service import Broker
from nakhon.kpi.service import recompute_kpis
from nakhon.kpi.store import VALUES_NS
from tests.conftest import Api
from tests.kpi.city import NOW, day_payloads, expected, state_payloads, write

PERIODS = {  # period id → day indexes of the generated city
    "2024-09-29": [0],
    "2024-09-30": [1],
    "2024-10-01": [2],
    "2024-09": [0, 1],
    "2024-10": [2],
    "FY2024": [0, 1],
    "FY2025": [2],
}
KIND = {
    "2024-09-29": "day",
    "2024-09-30": "day",
    "2024-10-01": "day",
    "2024-09": "month",
    "2024-10": "month",
    "FY2024": "fiscal_year",
    "FY2025": "fiscal_year",
}


def broker_of(api: Api) -> Broker:
    broker: Broker = api.client.app.state.api.broker  # type: ignore[attr-defined]
    return broker


async def values(api: Api, tenant: str) -> dict[str, Any]:
    found = await broker_of(api).storage.kv_list(VALUES_NS)
    return {k.split("|", 1)[1]: v for k, v in found.items() if k.startswith(tenant + "|")}


async def city(api: Api, tenant: str) -> None:
    await write(api, tenant, state_payloads())
    for d in range(3):
        await write(api, tenant, day_payloads(d))


async def test_every_kpi_matches_independent_values(api: Api, tenant: str) -> None:
    await city(api, tenant)
    result = await recompute_kpis(broker_of(api), tenant, NOW)
    assert result.first is not None and result.first.isoformat() == "2024-09-29"
    got = await values(api, tenant)
    for pid, days in PERIODS.items():
        want = expected(days)
        for kpi_id, value in want.items():
            stored = got[kpi_id][KIND[pid]][pid]["value"]
            if kpi_id == "median-traffic-speed":
                assert value is not None and abs(stored - value) < 1.0, (pid, stored, value)
            else:
                assert stored == pytest.approx(value, abs=1e-3), (kpi_id, pid, stored, value)
    # Trend: each period against the one before (October's against September's).
    oct_days = got["pm25-days-over-standard"]["month"]["2024-10"]
    assert oct_days["previous"] == 2.0
    # e-services: the snapshot taken on "today" (2 October in Bangkok): 2 of 3 online.
    assert got["eservices-online"]["day"]["2024-10-02"]["value"] == pytest.approx(66.6667)
    # Requests by closing day: 24 h (closed 30 Sep), 36 h (closed 1 Oct); the open one ignored.
    req = got["request-resolution-time"]
    assert req["day"]["2024-09-30"]["value"] == 24.0
    assert req["fiscal_year"]["FY2025"]["value"] == 36.0
    assert req["fiscal_year"]["FY2024"]["value"] == 24.0


async def test_incremental_equals_full(api: Api, tenant: str) -> None:
    broker = broker_of(api)
    full_tenant = tenant + "full"
    await city(api, full_tenant)
    await recompute_kpis(broker, full_tenant, NOW)

    # The same city, arriving a day at a time, recomputed after each day; 30 September's
    # data arrives late (after the run of 1 October).
    await write(api, tenant, state_payloads())
    await write(api, tenant, day_payloads(0))
    first = await recompute_kpis(broker, tenant, NOW - timedelta(days=1))
    await write(api, tenant, day_payloads(1))
    await write(api, tenant, day_payloads(2))
    second = await recompute_kpis(broker, tenant, NOW)
    # The second run read only from the late day before the high-water mark, not all history.
    assert second.first is not None and first.first is not None
    assert second.first > first.first
    assert second.first.isoformat() == "2024-09-30"
    assert second.days_rebuilt == 3
    # Nothing written since: the day before the high-water mark is not read again.
    third = await recompute_kpis(broker, tenant, NOW + timedelta(hours=1))
    assert third.first is not None and third.first.isoformat() == "2024-10-02"
    assert third.days_rebuilt == 1

    a, b = await values(api, tenant), await values(api, full_tenant)
    # e-services are a snapshot of current state (taken on each run's day), not history:
    # the incremental city has one more snapshot day, by construction.
    a.pop("eservices-online")
    b.pop("eservices-online")
    assert a == b


async def test_entities_and_api(api: Api, tenant: str) -> None:
    await city(api, tenant)
    await recompute_kpis(broker_of(api), tenant, NOW)
    headers = {"NGSILD-Tenant": tenant}
    eid = "urn:ngsi-ld:KeyPerformanceIndicator:nakhon:pm25-days-over-standard:yearly"
    r = await api.get(f"/ngsi-ld/v1/entities/{eid}", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "KeyPerformanceIndicator"
    assert body["kpiValue"]["value"] == 1.0  # FY2025 so far: 1 October
    assert body["calculationPeriod"]["value"] == {"from": "2024-10-01", "to": "2025-09-30"}
    assert body["calculationFrequency"]["value"] == "yearly"
    assert body["periodLabel"]["languageMap"]["th"].startswith("ปีงบประมาณ พ.ศ. 2568")
    assert body["kpiTrend"]["value"]["previousValue"] == 2.0
    assert body["currentStanding"]["value"] in ("veryGood", "good", "fair", "bad", "veryBad")
    # Every computed period is an update, so the temporal API has one kpiValue per period.
    r = await api.get(f"/ngsi-ld/v1/temporal/entities/{eid}?attrs=kpiValue", headers=headers)
    assert r.status_code == 200, r.text
    inst = r.json()["kpiValue"]
    assert [i["value"] for i in (inst if isinstance(inst, list) else [inst])] == [2.0, 1.0]

    r = await api.get("/nakhon/v1/kpis?domain=environment&lang=th", headers=headers)
    assert r.status_code == 200, r.text
    docs = r.json()
    assert {d["domain"] for d in docs} == {"environment"}
    aqi = next(d for d in docs if d["id"] == "mean-aqi")
    assert aqi["name"] == "ดัชนีคุณภาพอากาศเฉลี่ย"
    assert aqi["latest"]["monthly"]["label"] == "ตุลาคม 2567"
    r = await api.get("/nakhon/v1/kpis/median-traffic-speed?lang=en", headers=headers)
    assert r.status_code == 200
    doc = r.json()
    assert [v["period"] for v in doc["values"]["daily"]] == [
        "2024-10-01",
        "2024-09-30",
        "2024-09-29",
    ]
    assert doc["values"]["yearly"][0]["label"] == "Fiscal year 2025 (Oct 2024 – Sep 2025)"
    assert (await api.get("/nakhon/v1/kpis/nope", headers=headers)).status_code == 404
    assert (await api.get("/nakhon/v1/kpis?lang=fr", headers=headers)).status_code == 400
    assert (await api.get("/nakhon/v1/kpis?domain=space", headers=headers)).status_code == 400


async def test_empty_tenant_is_a_no_op(api: Api, tenant: str) -> None:
    result = await recompute_kpis(broker_of(api), tenant, NOW)
    assert result.periods_written == 0
    r = await api.post("/nakhon/v1/kpis/recompute", headers={"NGSILD-Tenant": tenant})
    assert r.status_code == 200, r.text
