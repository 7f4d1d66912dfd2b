"""Deletions in temporal history on both engines: deletion markers (deletedAt, NGSI-LD Null),
deleted entities reachable through /temporal, aggregation without markers, re-creation, tenants.

Expected outputs are computed here from what the test wrote; deletion times are read back from
the entity's own modifiedAt (the same transaction time) or bracketed by the clock around the
request.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Api
from tests.temporal.conftest import START, T, get, iso

E = "/ngsi-ld/v1/entities"
NULL = "urn:ngsi-ld:null"
EID = "urn:ngsi-ld:Room:del-1"


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def make_room(api: Api, headers: dict[str, str], eid: str = EID, n: int = 4) -> list[float]:
    """A Room with n hourly temperatures, a humidity (two datasets), a Relationship and a
    LanguageProperty; returns the temperatures written."""
    temps = [20.5 + 1.25 * i for i in range(n)]
    body = {
        "id": eid, "type": "Room",
        "temperature": {"type": "Property", "value": temps[0], "observedAt": iso(START)},
        "humidity": [
            {"type": "Property", "value": 40, "observedAt": iso(START)},
            {"type": "Property", "value": 41, "datasetId": "urn:ngsi-ld:ds:b",
             "observedAt": iso(START)},
        ],
        "inBuilding": {"type": "Relationship", "object": "urn:ngsi-ld:Building:1"},
        "label": {"type": "LanguageProperty", "languageMap": {"th": "ห้อง", "en": "room"}},
    }
    r = await api.post(E, json=body, headers=headers)
    assert r.status_code == 201, r.text
    for i, v in enumerate(temps[1:], start=1):
        r = await api.patch(f"{E}/{eid}/attrs", headers=headers, json={"temperature": {
            "type": "Property", "value": v, "observedAt": iso(START + timedelta(hours=i))}})
        assert r.status_code == 204, r.text
    return temps


async def modified_at(api: Api, headers: dict[str, str], eid: str = EID) -> str:
    body = await get(api, headers, f"{E}/{eid}?options=sysAttrs")
    return str(body["modifiedAt"])


def plain(instances: list[dict[str, Any]]) -> list[Any]:
    """Instances without their instanceId (which the engine assigns)."""
    return [{k: v for k, v in i.items() if k != "instanceId"} for i in instances]


async def test_delete_attribute_leaves_a_marker(api: Api, headers: dict[str, str]) -> None:
    temps = await make_room(api, headers)
    r = await api.delete(f"{E}/{EID}/attrs/temperature", headers=headers)
    assert r.status_code == 204, r.text
    deleted_at = await modified_at(api, headers)
    body = await get(api, headers, f"{T}/{EID}")
    expected = [{"type": "Property", "value": v, "observedAt": iso(START + timedelta(hours=i))}
                for i, v in enumerate(temps)]
    # The attribute is gone from the entity but its history ends with the marker.
    assert plain(body["temperature"]) == [*expected, {"type": "Property", "value": NULL}]
    ids = [i["instanceId"] for i in body["temperature"]]
    assert len(set(ids)) == len(ids)
    with_sys = await get(api, headers, f"{T}/{EID}?options=sysAttrs&attrs=temperature")
    marker = with_sys["temperature"][-1]
    assert marker["deletedAt"] == deleted_at and marker["value"] == NULL
    assert all("deletedAt" not in i for i in with_sys["temperature"][:-1])
    assert "deletedAt" not in with_sys  # the entity itself exists
    concise = await get(api, headers,
                        f"{T}/{EID}?format=concise&options=sysAttrs&attrs=temperature")
    assert {k: v for k, v in concise["temperature"][-1].items() if k != "instanceId"} == {
        "value": NULL, "deletedAt": deleted_at}
    # temporalValues: the Null value at the deletion time.
    tv = await get(api, headers, f"{T}/{EID}?options=temporalValues&attrs=temperature")
    assert tv["temperature"] == {"type": "Property", "values": [
        *[[v, iso(START + timedelta(hours=i))] for i, v in enumerate(temps)],
        [NULL, deleted_at]]}
    # lastN counts the marker as the newest instance.
    last = await get(api, headers, f"{T}/{EID}?lastN=2&attrs=temperature")
    assert plain(last["temperature"]) == [expected[-1], {"type": "Property", "value": NULL}]
    # A window over the observations only does not see the deletion.
    window = (f"timerel=between&timeAt={iso(START)}"
              f"&endTimeAt={iso(START + timedelta(days=1))}")
    assert plain((await get(api, headers, f"{T}/{EID}?{window}"))["temperature"]) == expected


async def test_markers_for_each_kind_of_deletion(api: Api, headers: dict[str, str]) -> None:
    await make_room(api, headers)
    # One datasetId of humidity: only that instance gets a marker.
    r = await api.delete(f"{E}/{EID}/attrs/humidity?datasetId=urn:ngsi-ld:ds:b",
                         headers=headers)
    assert r.status_code == 204, r.text
    t1 = await modified_at(api, headers)
    # Merge with NGSI-LD Null deletes the LanguageProperty.
    r = await api.patch(f"{E}/{EID}", headers=headers,
                        json={"label": {"type": "LanguageProperty",
                                        "languageMap": {"@none": NULL}}})
    assert r.status_code == 204, r.text
    t2 = await modified_at(api, headers)
    # Replace without the Relationship (and without the default humidity) deletes both.
    r = await api.put(f"{E}/{EID}", headers=headers, json={
        "type": "Room", "temperature": {"type": "Property", "value": 1}})
    assert r.status_code == 204, r.text
    t3 = await modified_at(api, headers)
    body = await get(api, headers, f"{T}/{EID}?timeproperty=deletedAt")
    assert plain(body["humidity"]) == [
        {"type": "Property", "value": NULL, "datasetId": "urn:ngsi-ld:ds:b", "deletedAt": t1},
        {"type": "Property", "value": NULL, "deletedAt": t3}]
    assert plain(body["label"]) == [
        {"type": "LanguageProperty", "languageMap": {"@none": NULL}, "deletedAt": t2}]
    assert plain(body["inBuilding"]) == [
        {"type": "Relationship", "object": NULL, "deletedAt": t3}]
    assert "temperature" not in body  # replaced, never deleted
    agg = await get(api, headers, f"{T}/{EID}?options=aggregatedValues&attrs=inBuilding"
                    "&aggrMethods=totalCount")
    assert agg["inBuilding"]["type"] == "Relationship"  # the type of what was deleted
    assert agg["inBuilding"]["totalCount"][0][0] == 1
    tv = await get(api, headers, f"{T}/{EID}?options=temporalValues&attrs=inBuilding")
    assert tv["inBuilding"]["objects"][-1] == [NULL, t3]
    assert tv["inBuilding"]["objects"][0][0] == "urn:ngsi-ld:Building:1"


async def test_aggregation_leaves_markers_out(api: Api, headers: dict[str, str]) -> None:
    temps = await make_room(api, headers, n=6)
    await api.delete(f"{E}/{EID}/attrs/temperature", headers=headers)
    body = await get(api, headers, f"{T}/{EID}?options=aggregatedValues&attrs=temperature"
                     "&aggrMethods=totalCount,distinctCount,sum,avg,min,max,stddev,sumsq")
    agg = body["temperature"]
    first, last = iso(START), iso(START + timedelta(hours=len(temps) - 1))
    # One whole-history bucket from the first to the last observation: no marker counted,
    # and the bucket does not stretch to the deletion time.
    expected = {
        "totalCount": len(temps), "distinctCount": len(set(temps)), "sum": sum(temps),
        "avg": statistics.fmean(temps), "min": min(temps), "max": max(temps),
        "stddev": statistics.stdev(temps), "sumsq": sum(v * v for v in temps)}
    for method, value in expected.items():
        [[got, start, end]] = agg[method]
        assert abs(got - value) < 1e-9, (method, got, value)
        assert (parse(start), parse(end)) == (parse(first), parse(last))
    # A bucket holding only the deletion is not returned.
    daily = await get(api, headers, f"{T}/{EID}?options=aggregatedValues&attrs=temperature"
                      "&aggrMethods=totalCount&aggrPeriodDuration=P1D")
    [[count, start, end]] = daily["temperature"]["totalCount"]
    assert (count, parse(start), parse(end)) == (len(temps), START, START + timedelta(days=1))


async def test_deleted_entity_stays_reachable(api: Api, headers: dict[str, str]) -> None:
    temps = await make_room(api, headers)
    created = (await get(api, headers, f"{E}/{EID}?options=sysAttrs"))["createdAt"]
    before = datetime.now(UTC) - timedelta(seconds=1)
    r = await api.delete(f"{E}/{EID}", headers=headers)
    assert r.status_code == 204, r.text
    after = datetime.now(UTC) + timedelta(seconds=1)
    await get(api, headers, f"{E}/{EID}", status=404)
    body = await get(api, headers, f"{T}/{EID}?options=sysAttrs")
    assert body["id"] == EID and body["type"] == "Room"
    deleted_at = body["deletedAt"]
    assert before <= parse(deleted_at) <= after
    assert body["createdAt"] == created and body["modifiedAt"] == deleted_at
    assert [i["value"] for i in body["temperature"]] == [*temps, NULL]
    # Every instance of every attribute gets its marker, at the same time.
    assert plain(body["humidity"])[-2:] == [
        {"type": "Property", "value": NULL, "deletedAt": deleted_at},
        {"type": "Property", "value": NULL, "datasetId": "urn:ngsi-ld:ds:b",
         "deletedAt": deleted_at}]
    assert body["inBuilding"][-1]["object"] == NULL
    assert body["label"][-1]["languageMap"] == {"@none": NULL}
    plain_body = await get(api, headers, f"{T}/{EID}")
    assert "deletedAt" not in plain_body and "createdAt" not in plain_body
    # Queries by type find it inside the time range, not outside it.
    found = await get(api, headers, f"{T}?type=Room&attrs=temperature&timerel=between"
                      f"&timeAt={iso(START)}&endTimeAt={iso(START + timedelta(days=1))}")
    assert [e["id"] for e in found] == [EID]
    assert [i["value"] for i in found[0]["temperature"]] == temps
    later = await get(api, headers, f"{T}?type=Room&timerel=after&timeAt={iso(after)}")
    assert later == []
    # q / geo / scopeQ are about a current state it no longer has.
    assert await get(api, headers, f"{T}?type=Room&q=temperature>0") == []
    # Another tenant sees nothing.
    other = {**headers, "NGSILD-Tenant": headers["NGSILD-Tenant"] + "x"}
    r = await api.get(f"{T}/{EID}", headers=other)
    assert r.status_code in (400, 404), r.text
    # DELETE /temporal/entities removes the history completely.
    r = await api.delete(f"{T}/{EID}", headers=headers)
    assert r.status_code == 204, r.text
    await get(api, headers, f"{T}/{EID}", status=404)
    assert await get(api, headers, f"{T}?type=Room") == []


async def test_batch_delete_and_paging(api: Api, headers: dict[str, str]) -> None:
    ids = [f"urn:ngsi-ld:Room:p{i}" for i in range(5)]
    for eid in ids:
        r = await api.post(E, headers=headers, json={
            "id": eid, "type": "Room",
            "temperature": {"type": "Property", "value": 1, "observedAt": iso(START)}})
        assert r.status_code == 201, r.text
    gone = [ids[1], ids[3]]
    r = await api.post("/ngsi-ld/v1/entityOperations/delete", headers=headers, json=gone)
    assert r.status_code == 204, r.text
    # Existing entities first (id order), then the deleted ones (id order).
    order = [ids[0], ids[2], ids[4], ids[1], ids[3]]
    seen: list[str] = []
    for offset in range(0, 6, 2):
        r = await api.get(f"{T}?type=Room&limit=2&offset={offset}&count=true", headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["NGSILD-Results-Count"] == "5"
        seen += [e["id"] for e in r.json()]
    assert seen == order
    page = await get(api, headers, f"{T}?type=Room&limit=3&offset=3")
    assert [e["id"] for e in page] == order[3:]
    one = await get(api, headers, f"{T}?id={ids[3]}&options=sysAttrs&attrs=temperature")
    assert [e["id"] for e in one] == [ids[3]] and "deletedAt" in one[0]
    assert [i["value"] for i in one[0]["temperature"]] == [1, NULL]
    pattern = await get(api, headers, f"{T}?idPattern=.*p[13]$&type=Room")
    assert [e["id"] for e in pattern] == gone
    r = await api.post("/ngsi-ld/v1/temporal/entityOperations/query", headers=headers, json={
        "type": "Query", "entities": [{"type": "Room"}], "attrs": ["temperature"],
        "temporalQ": {"timerel": "before", "timeAt": iso(START + timedelta(days=1))}})
    assert r.status_code == 200, r.text
    # Before the deletions, the deleted rooms still had their observation in the window.
    assert [e["id"] for e in r.json()] == order
    assert all([i["value"] for i in e["temperature"]] == [1] for e in r.json())


async def test_recreated_entity_continues_its_history(
    api: Api, headers: dict[str, str]
) -> None:
    temps = await make_room(api, headers, n=2)
    assert (await api.delete(f"{E}/{EID}", headers=headers)).status_code == 204
    later = START + timedelta(days=2)
    r = await api.post(E, headers=headers, json={
        "id": EID, "type": "Room",
        "temperature": {"type": "Property", "value": 99, "observedAt": iso(later)}})
    assert r.status_code == 201, r.text
    body = await get(api, headers, f"{T}/{EID}?options=sysAttrs")
    assert "deletedAt" not in body  # it exists again
    # Ordered by time: the old observations, the new one (2024), then the deletion (now).
    assert [i["value"] for i in body["temperature"]] == [*temps, 99, NULL]
    # Attributes it no longer has still show their history, ending with the marker.
    assert body["inBuilding"][-1]["object"] == NULL
    # Temporal provision on the deleted-then-recreated entity works as usual.
    r = await api.post(f"{T}/{EID}/attrs", headers=headers, json={
        "temperature": [{"type": "Property", "value": 7, "observedAt": iso(later)}]})
    assert r.status_code == 204, r.text


async def test_retention_of_deleted_entities(
    api: Api, headers: dict[str, str], tenant: str
) -> None:
    """Type rules reach a deleted entity through its marker; the entity marker goes only once
    nothing else of its entity is left."""
    from nakhon.core.auth import SYSTEM
    from nakhon.temporal.retention import parse_rules, prune

    eid = "urn:ngsi-ld:Water:d1"
    body = {"id": eid, "type": "Water", **{
        attr: [{"type": "Property", "value": m, "observedAt": f"2024-0{m}-01T00:00:00Z"}
               for m in range(1, 6)] for attr in ("level", "pm25")}}
    assert (await api.post(T, json=body, headers=headers)).status_code == 201
    assert (await api.delete(f"{E}/{eid}", headers=headers)).status_code == 204
    storage = api.client.app.state.storage  # type: ignore[attr-defined]
    access = api.client.app.state.api.access  # type: ignore[attr-defined]

    async def values(attr: str) -> list[Any]:
        got = await get(api, headers, f"{T}/{eid}?attrs={attr}")
        return [i["value"] for i in got.get(attr, [])]

    # type:Water applies although the entity is gone (45 days before 2024-06-01: May stays);
    # the deletion markers are younger than the cut-off and stay too.
    rules = parse_rules(f"tenant:{tenant},type:Water=P45D; tenant:{tenant},attr:pm25=P100Y")
    await prune(storage, access, SYSTEM, rules, datetime(2024, 6, 1, tzinfo=UTC))
    assert await values("level") == [5, NULL]
    assert await values("pm25") == [1, 2, 3, 4, 5, NULL]
    # Years later: level and its marker go; pm25 is kept (attribute rule), and so is the
    # entity marker that keeps the entity reachable.
    await prune(storage, access, SYSTEM, rules, datetime(2099, 1, 1, tzinfo=UTC))
    assert await values("level") == []
    assert await values("pm25") == [1, 2, 3, 4, 5, NULL]
    found = await get(api, headers, f"{T}?type=Water")
    assert [e["id"] for e in found] == [eid]
    # Once the last instance has gone, the entity marker follows: the entity is unknown.
    await prune(storage, access, SYSTEM, parse_rules(f"tenant:{tenant}=P1D"),
                datetime(2999, 1, 1, tzinfo=UTC))
    await get(api, headers, f"{T}/{eid}", status=404)
    assert await get(api, headers, f"{T}?type=Water") == []
