"""Domains and alert-rules HTTP API and the alert round trip, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nakhon.broker.service import Broker
from nakhon.core.auth import SYSTEM
from nakhon.domains.alert_service import (
    MemoryHistory,
    alert_id,
    evaluate_alerts,
    sweep_absence,
)
from tests.conftest import Api

ENTITIES = "/ngsi-ld/v1/entities"


def broker_of(api: Api) -> Broker:
    broker: Broker = api.client.app.state.api.broker  # type: ignore[attr-defined]
    return broker


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def station(eid: str, pm25: float, at: datetime) -> dict[str, Any]:
    return {
        "id": eid,
        "type": "AirQualityObserved",
        "pm25": {"type": "Property", "value": pm25, "observedAt": iso(at), "unitCode": "GQ"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [101.07, 13.69]},
        },
    }


async def test_list_domains_in_both_languages(api: Api, tenant: str) -> None:
    r = await api.get("/nakhon/v1/domains", headers={"NGSILD-Tenant": tenant})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body) == 7
    assert body[0]["name"] == {"th": "สิ่งแวดล้อมอัจฉริยะ", "en": "Smart Environment"}
    r = await api.get("/nakhon/v1/domains?lang=th", headers={"NGSILD-Tenant": tenant})
    assert r.json()[6]["name"] == "การบริหารภาครัฐอัจฉริยะ"
    r = await api.get("/nakhon/v1/domains?lang=xx")
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")


async def test_domain_with_entity_counts(api: Api, tenant: str, headers: dict[str, str]) -> None:
    now = datetime.now(UTC)
    for n in range(3):
        r = await api.post(
            ENTITIES, json=station(f"urn:ngsi-ld:AQ:{n}", 10.0, now), headers=headers
        )
        assert r.status_code == 201, r.text
    r = await api.get("/nakhon/v1/domains/environment?lang=en", headers={"NGSILD-Tenant": tenant})
    assert r.status_code == 200, r.text
    body = r.json()
    counts = {t["type"]: t["entityCount"] for t in body["types"]}
    assert counts["AirQualityObserved"] == 3 and counts["NoiseLevelObserved"] == 0
    assert body["entityCount"] == 3 and body["name"] == "Smart Environment"
    # A tenant with no data yet: counts are zero, not an error.
    r = await api.get("/nakhon/v1/domains/mobility", headers={"NGSILD-Tenant": tenant + "x"})
    assert r.status_code == 200 and r.json()["entityCount"] == 0
    r = await api.get("/nakhon/v1/domains/tourism")
    assert r.status_code == 404 and r.json()["type"].endswith("ResourceNotFound")


async def test_city_extends_the_catalogue(api: Api, tenant: str, headers: dict[str, str]) -> None:
    url = "/nakhon/v1/domains/mobility/types/Songthaew"
    body = {"name": {"th": "รถสองแถว", "en": "Songthaew"}}
    r = await api.put(url, json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert any(t["type"] == "Songthaew" and not t["builtin"] for t in r.json()["types"])
    r = await api.get("/nakhon/v1/domains/mobility", headers=headers)
    assert "Songthaew" in [t["type"] for t in r.json()["types"]]
    # Other cities do not see it.
    r = await api.get("/nakhon/v1/domains/mobility", headers={"NGSILD-Tenant": tenant + "b"})
    assert "Songthaew" not in [t["type"] for t in r.json()["types"]]
    r = await api.delete(url, headers=headers)
    assert r.status_code == 204
    r = await api.get("/nakhon/v1/domains/mobility", headers=headers)
    assert "Songthaew" not in [t["type"] for t in r.json()["types"]]
    # Hide a built-in type, then show it again with a PUT without body.
    r = await api.delete("/nakhon/v1/domains/energy/types/SolarEnergy", headers=headers)
    assert r.status_code == 204
    r = await api.get("/nakhon/v1/domains/energy", headers=headers)
    assert "SolarEnergy" not in [t["type"] for t in r.json()["types"]]
    r = await api.put("/nakhon/v1/domains/energy/types/SolarEnergy", headers=headers)
    assert r.status_code == 200, r.text
    assert "SolarEnergy" in [t["type"] for t in r.json()["types"]]


async def test_catalogue_bad_input(api: Api, headers: dict[str, str]) -> None:
    bad = [
        ("/nakhon/v1/domains/mobility/types/bad%20name", {}),
        ("/nakhon/v1/domains/mobility/types/Bus", {"iri": "not an iri"}),
        ("/nakhon/v1/domains/mobility/types/Bus", {"name": {"fr": "bus"}}),
        ("/nakhon/v1/domains/mobility/types/Bus", {"colour": "red"}),
        ("/nakhon/v1/domains/mobility/types/Bus", ["list"]),
    ]
    for url, body in bad:
        r = await api.put(url, json=body, headers=headers)
        assert r.status_code == 400, (url, body, r.text)
        assert {"type", "title", "detail"} <= set(r.json())
    r = await api.put("/nakhon/v1/domains/mobility/types/Bus", content=b"{nope", headers=headers)
    assert r.status_code == 400
    r = await api.delete("/nakhon/v1/domains/mobility/types/Nothing", headers=headers)
    assert r.status_code == 404


async def test_alert_rules_get_put_reset(api: Api, tenant: str, headers: dict[str, str]) -> None:
    r = await api.get("/nakhon/v1/alert-rules", headers=headers)
    assert r.status_code == 200 and r.json()["default"] is True
    assert "pm25-24h" in [x["id"] for x in r.json()["rules"]]
    rules = {
        "rules": [
            {
                "id": "noise",
                "kind": "threshold",
                "types": ["NoiseLevelObserved"],
                "attr": "LAeq",
                "op": ">",
                "value": 70,
                "severity": "medium",
                "title": {"th": "เสียงดังเกิน 70 dB(A)", "en": "Noise above 70 dB(A)"},
            }
        ]
    }
    r = await api.put("/nakhon/v1/alert-rules", json=rules, headers=headers)
    assert r.status_code == 200, r.text
    r = await api.get("/nakhon/v1/alert-rules", headers=headers)
    assert r.json()["default"] is False and [x["id"] for x in r.json()["rules"]] == ["noise"]
    # A bad rule changes nothing.
    broken = {"rules": [*rules["rules"], {"id": "bad", "kind": "threshold", "types": ["A"]}]}
    r = await api.put("/nakhon/v1/alert-rules", json=broken, headers=headers)
    assert r.status_code == 400 and "bad" in r.json()["detail"]
    r = await api.get("/nakhon/v1/alert-rules", headers=headers)
    assert [x["id"] for x in r.json()["rules"]] == ["noise"]
    r = await api.put("/nakhon/v1/alert-rules", json="rules", headers=headers)
    assert r.status_code == 400
    r = await api.delete("/nakhon/v1/alert-rules", headers=headers)
    assert r.status_code == 200 and r.json()["default"] is True


async def alerts(api: Api, tenant: str) -> list[dict[str, Any]]:
    r = await api.get(f"{ENTITIES}?type=Alert&limit=100", headers={"NGSILD-Tenant": tenant})
    assert r.status_code == 200, r.text
    result: list[dict[str, Any]] = r.json()
    return result


@pytest.mark.usefixtures("manual_alerts")
async def test_pm25_alert_raised_and_cleared(
    api: Api, tenant: str, headers: dict[str, str]
) -> None:
    broker = broker_of(api)
    history = MemoryHistory()
    eid = "urn:ngsi-ld:AirQualityObserved:cco-01"
    start = datetime.now(UTC) - timedelta(hours=23)
    # 24 hourly readings of 45 µg/m³, written through the API and evaluated as they come.
    for h in range(24):
        at = start + timedelta(hours=h)
        r = (
            await api.post(f"{ENTITIES}/{eid}/attrs", json=station(eid, 45.0, at), headers=headers)
            if h
            else await api.post(ENTITIES, json=station(eid, 45.0, at), headers=headers)
        )
        assert r.status_code in (201, 204), r.text
        entity = await broker.retrieve_entity(SYSTEM, tenant, eid)
        await evaluate_alerts(broker, tenant, [entity], now=at, history=history)
    found = await alerts(api, tenant)
    assert [a["id"] for a in found] == [alert_id("pm25-24h", eid)]
    alert = found[0]
    assert alert["severity"]["value"] == "high" and alert["status"]["value"] == "active"
    assert alert["category"]["value"] == "environment"
    assert alert["subCategory"]["value"] == "airPollution"
    assert alert["alertSource"]["object"] == eid
    assert "PM2.5" in alert["description"]["languageMap"]["en"]
    assert "มาตรฐาน" in alert["description"]["languageMap"]["th"]
    assert alert["location"]["value"]["coordinates"] == [101.07, 13.69]
    # The air clears: 24 hours of 10 µg/m³ bring the mean down and the alert is cleared.
    later = start + timedelta(hours=24)
    for h in range(24):
        at = later + timedelta(hours=h)
        await api.post(f"{ENTITIES}/{eid}/attrs", json=station(eid, 10.0, at), headers=headers)
        entity = await broker.retrieve_entity(SYSTEM, tenant, eid)
        await evaluate_alerts(broker, tenant, [entity], now=at, history=history)
    found = await alerts(api, tenant)
    assert len(found) == 1 and found[0]["status"]["value"] == "cleared"
    assert "validTo" in found[0]


@pytest.mark.usefixtures("manual_alerts")
async def test_offline_sensor_alert(api: Api, tenant: str, headers: dict[str, str]) -> None:
    broker = broker_of(api)
    eid = "urn:ngsi-ld:AirQualityObserved:cco-02"
    r = await api.post(ENTITIES, json=station(eid, 12.0, datetime.now(UTC)), headers=headers)
    assert r.status_code == 201
    assert await sweep_absence(broker, tenant) == []  # fresh
    later = datetime.now(UTC) + timedelta(minutes=45)
    raised = await sweep_absence(broker, tenant, now=later)
    assert [d.rule_id for d in raised] == ["sensor-offline"]
    found = await alerts(api, tenant)
    assert found[0]["id"] == alert_id("sensor-offline", eid)
    assert found[0]["severity"]["value"] == "low"
    # Sweeping again changes nothing; new data clears it.
    assert await sweep_absence(broker, tenant, now=later) == []
    await api.post(f"{ENTITIES}/{eid}/attrs", json=station(eid, 12.0, later), headers=headers)
    entity = await broker.retrieve_entity(SYSTEM, tenant, eid)
    cleared = await evaluate_alerts(broker, tenant, [entity], now=later)
    assert [(d.rule_id, d.active) for d in cleared] == [("sensor-offline", False)]
    assert (await alerts(api, tenant))[0]["status"]["value"] == "cleared"


@pytest.mark.usefixtures("manual_alerts")
async def test_flood_alert_from_the_stations_own_levels(
    api: Api, tenant: str, headers: dict[str, str]
) -> None:
    broker = broker_of(api)
    eid = "urn:ngsi-ld:FloodMonitoring:bang-pakong"
    body = {
        "id": eid,
        "type": "FloodMonitoring",
        "currentLevel": {"type": "Property", "value": 26.5},
        "alertLevel": {"type": "Property", "value": 11.0},
        "dangerLevel": {"type": "Property", "value": 26.0},
    }
    assert (await api.post(ENTITIES, json=body, headers=headers)).status_code == 201
    entity = await broker.retrieve_entity(SYSTEM, tenant, eid)
    decided = await evaluate_alerts(broker, tenant, [entity])
    assert sorted(d.rule_id for d in decided) == ["flood-alert-level", "flood-danger-level"]
    severities = sorted(a["severity"]["value"] for a in await alerts(api, tenant))
    assert severities == ["critical", "high"]
    # Alerts are not evaluated against alerts (no feedback loop).
    own = await broker.retrieve_entity(SYSTEM, tenant, alert_id("flood-alert-level", eid))
    assert await evaluate_alerts(broker, tenant, [own]) == []


async def test_alerts_follow_committed_writes(
    api: Api, tenant: str, headers: dict[str, str]
) -> None:
    """No manual call: the write hook feeds every committed change to the rules."""
    feed = api.client.app.state.alert_feed  # type: ignore[attr-defined]
    eid = "urn:ngsi-ld:FloodMonitoring:khlong-tha-lat"
    body = {
        "id": eid,
        "type": "FloodMonitoring",
        "currentLevel": {"type": "Property", "value": 12.0},
        "alertLevel": {"type": "Property", "value": 11.0},
        "dangerLevel": {"type": "Property", "value": 26.0},
    }
    assert (await api.post(ENTITIES, json=body, headers=headers)).status_code == 201
    await feed.drain()
    found = await alerts(api, tenant)
    assert [a["id"] for a in found] == [alert_id("flood-alert-level", eid)]
    assert found[0]["status"]["value"] == "active"
    level = {"currentLevel": {"type": "Property", "value": 3.0}}
    r = await api.patch(f"{ENTITIES}/{eid}/attrs", json=level, headers=headers)
    assert r.status_code == 204
    await feed.drain()
    assert (await alerts(api, tenant))[0]["status"]["value"] == "cleared"
