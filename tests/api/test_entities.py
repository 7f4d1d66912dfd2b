"""Entity operations over HTTP, on both engines (clause 5.6 / 6.4–6.5)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

E = "/ngsi-ld/v1/entities"
CTX_LINK = (
    "<https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld>; "
    'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
)


def room(n: int = 1, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Room:{n}",
        "type": "Room",
        "temperature": {
            "type": "Property",
            "value": 20 + n,
            "unitCode": "CEL",
            "observedAt": "2024-01-01T00:00:00Z",
        },
        "name": {"type": "Property", "value": f'ห้อง {n} "A" [b]'},
        "inBuilding": {"type": "Relationship", "object": "urn:ngsi-ld:Building:1"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [101.0 + n / 100, 13.7]},
        },
    }
    body.update(extra)
    return body


async def test_create_retrieve_roundtrip(api: Api, headers: dict[str, str]) -> None:
    r = await api.post(E, json=room(), headers=headers)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{E}/urn:ngsi-ld:Room:1"
    r = await api.get(f"{E}/urn:ngsi-ld:Room:1", headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in r.headers["link"]
    assert r.json() == room()


async def test_create_twice_is_already_exists(api: Api, headers: dict[str, str]) -> None:
    assert (await api.post(E, json=room(), headers=headers)).status_code == 201
    r = await api.post(E, json=room(), headers=headers)
    assert r.status_code == 409
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"


async def test_json_ld_body_and_accept(api: Api, tenant: str) -> None:
    body = {**room(), "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"}
    h = {"NGSILD-Tenant": tenant, "Content-Type": "application/ld+json"}
    assert (await api.post(E, json=body, headers=h)).status_code == 201
    r = await api.get(
        f"{E}/urn:ngsi-ld:Room:1",
        headers={"NGSILD-Tenant": tenant, "Accept": "application/ld+json"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/ld+json")
    assert "@context" in r.json()
    assert "link" not in r.headers


async def test_ld_json_without_context_is_rejected(api: Api, tenant: str) -> None:
    h = {"NGSILD-Tenant": tenant, "Content-Type": "application/ld+json"}
    r = await api.post(E, json=room(), headers=h)
    assert r.status_code == 400
    assert r.json()["type"].endswith("BadRequestData")


async def test_json_with_context_in_body_is_rejected(api: Api, headers: dict[str, str]) -> None:
    body = {**room(), "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"}
    r = await api.post(E, json=body, headers=headers)
    assert r.status_code == 400


async def test_media_types(api: Api, headers: dict[str, str], tenant: str) -> None:
    r = await api.post(
        E, content=b"{}", headers={"NGSILD-Tenant": tenant, "Content-Type": "text/plain"}
    )
    assert r.status_code == 415
    await api.post(E, json=room(), headers=headers)
    r = await api.get(
        f"{E}/urn:ngsi-ld:Room:1", headers={"NGSILD-Tenant": tenant, "Accept": "text/html"}
    )
    assert r.status_code == 406
    r = await api.get(
        f"{E}/urn:ngsi-ld:Room:1",
        headers={"NGSILD-Tenant": tenant, "Accept": "application/geo+json"},
    )
    assert r.status_code == 200
    feature = r.json()
    assert feature["type"] == "Feature"
    assert feature["geometry"] == room()["location"]["value"]


async def test_malformed_bodies(api: Api, headers: dict[str, str]) -> None:
    for raw in (b"{", b"", b"[1,2", b"\xff\xfe"):
        r = await api.post(E, content=raw, headers=headers)
        assert r.status_code == 400, (raw, r.text)
        assert r.json()["type"].endswith(("InvalidRequest", "BadRequestData"))
    for bad in (
        {"type": "Room"},
        {"id": "not a uri", "type": "Room"},
        {"id": "urn:x:1"},
        {"id": "urn:x:1", "type": "Room", "location": {"type": "Property", "value": 1}},
        {"id": "urn:x:1", "type": "Room", "p": {"type": "Relationship", "object": 5}},
        [1, 2],
        "text",
        5,
    ):
        r = await api.post(E, json=bad, headers=headers)
        assert r.status_code == 400, (bad, r.text)
    r = await api.get(f"{E}/urn:ngsi-ld:Room:1", headers=headers)
    assert r.status_code in (404,)  # nothing partial was written


async def test_body_size_limit(api: Api, headers: dict[str, str]) -> None:
    big = room(note={"type": "Property", "value": "x" * 300_000})
    r = await api.post(E, json=big, headers=headers)
    assert r.status_code == 413
    assert "type" in r.json()


async def test_not_found_and_bad_id(api: Api, headers: dict[str, str]) -> None:
    r = await api.get(f"{E}/urn:ngsi-ld:Room:404", headers=headers)
    assert r.status_code in (404,)
    r = await api.get(f"{E}/nota%20uri", headers=headers)
    assert r.status_code == 400


async def test_replace_merge_delete(api: Api, headers: dict[str, str]) -> None:
    await api.post(E, json=room(), headers=headers)
    url = f"{E}/urn:ngsi-ld:Room:1"
    r = await api.put(
        url, json={"type": "Room", "size": {"type": "Property", "value": 30}}, headers=headers
    )
    assert r.status_code == 204, r.text
    got = (await api.get(url, headers=headers)).json()
    assert set(got) == {"id", "type", "size"}
    r = await api.patch(
        url,
        json={
            "size": {"type": "Property", "value": 31},
            "color": {"type": "Property", "value": "red"},
        },
        headers=headers,
    )
    assert r.status_code == 204, r.text
    got = (await api.get(url, headers=headers)).json()
    assert got["size"]["value"] == 31 and got["color"]["value"] == "red"
    r = await api.patch(url, json={"color": "urn:ngsi-ld:null"}, headers=headers)
    assert r.status_code == 204, r.text
    assert "color" not in (await api.get(url, headers=headers)).json()
    assert (await api.delete(url, headers=headers)).status_code == 204
    assert (await api.get(url, headers=headers)).status_code == 404
    assert (await api.delete(url, headers=headers)).status_code == 404


async def test_attributes_operations(api: Api, headers: dict[str, str]) -> None:
    await api.post(E, json=room(), headers=headers)
    attrs = f"{E}/urn:ngsi-ld:Room:1/attrs"
    r = await api.post(attrs, json={"humidity": {"type": "Property", "value": 50}}, headers=headers)
    assert r.status_code == 204, r.text
    r = await api.post(
        f"{attrs}?options=noOverwrite",
        json={"humidity": {"type": "Property", "value": 99}},
        headers=headers,
    )
    assert r.status_code in (204, 207)
    got = (await api.get(f"{E}/urn:ngsi-ld:Room:1", headers=headers)).json()
    assert got["humidity"]["value"] == 50
    r = await api.patch(
        attrs,
        json={
            "humidity": {"type": "Property", "value": 51},
            "absent": {"type": "Property", "value": 1},
        },
        headers=headers,
    )
    assert r.status_code == 207, r.text
    assert [n["attributeName"] for n in r.json()["notUpdated"]] == ["absent"]
    r = await api.patch(f"{attrs}/humidity", json={"value": 52}, headers=headers)
    assert r.status_code == 204, r.text
    got = (await api.get(f"{E}/urn:ngsi-ld:Room:1", headers=headers)).json()
    assert got["humidity"]["value"] == 52
    r = await api.put(f"{attrs}/humidity", json={"type": "Property", "value": 60}, headers=headers)
    assert r.status_code == 204, r.text
    r = await api.patch(f"{attrs}/nothere", json={"value": 1}, headers=headers)
    assert r.status_code == 404
    assert (await api.delete(f"{attrs}/humidity", headers=headers)).status_code == 204
    assert (await api.delete(f"{attrs}/humidity", headers=headers)).status_code == 404


async def test_multi_instance_attributes(api: Api, headers: dict[str, str]) -> None:
    body = room()
    body["speed"] = [
        {"type": "Property", "value": 10},
        {"type": "Property", "value": 11, "datasetId": "urn:ngsi-ld:Dataset:gps"},
    ]
    await api.post(E, json=body, headers=headers)
    url = f"{E}/urn:ngsi-ld:Room:1"
    got = (await api.get(url, headers=headers)).json()
    assert isinstance(got["speed"], list) and len(got["speed"]) == 2
    r = await api.delete(f"{url}/attrs/speed?datasetId=urn:ngsi-ld:Dataset:gps", headers=headers)
    assert r.status_code == 204
    got = (await api.get(url, headers=headers)).json()
    assert got["speed"] == {"type": "Property", "value": 10}
    body2 = {"speed": [{"type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:Dataset:a"}]}
    await api.post(f"{url}/attrs", json=body2, headers=headers)
    r = await api.delete(f"{url}/attrs/speed?deleteAll=true", headers=headers)
    assert r.status_code == 204
    assert "speed" not in (await api.get(url, headers=headers)).json()


async def test_sysattrs_and_representations(api: Api, headers: dict[str, str]) -> None:
    await api.post(E, json=room(), headers=headers)
    url = f"{E}/urn:ngsi-ld:Room:1"
    got = (await api.get(f"{url}?options=sysAttrs", headers=headers)).json()
    assert got["createdAt"].endswith("Z") and "modifiedAt" in got["temperature"]
    kv = (await api.get(f"{url}?options=keyValues", headers=headers)).json()
    assert kv == {
        "id": "urn:ngsi-ld:Room:1",
        "type": "Room",
        "temperature": 21,
        "name": 'ห้อง 1 "A" [b]',
        "inBuilding": "urn:ngsi-ld:Building:1",
        "location": room()["location"]["value"],
    }
    assert (await api.get(f"{url}?format=simplified", headers=headers)).json() == kv
    concise = (await api.get(f"{url}?options=concise", headers=headers)).json()
    assert concise["inBuilding"] == {"object": "urn:ngsi-ld:Building:1"}
    picked = (await api.get(f"{url}?pick=id,temperature&options=keyValues", headers=headers)).json()
    assert picked == {"id": "urn:ngsi-ld:Room:1", "temperature": 21}
    attrs = (await api.get(f"{url}?attrs=name", headers=headers)).json()
    assert set(attrs) == {"id", "type", "name"}


async def test_language_property(api: Api, headers: dict[str, str]) -> None:
    body = room(
        title={"type": "LanguageProperty", "languageMap": {"th": "ห้องประชุม", "en": "Meeting room"}}
    )
    await api.post(E, json=body, headers=headers)
    url = f"{E}/urn:ngsi-ld:Room:1"
    got = (await api.get(url, headers=headers)).json()
    assert got["title"]["languageMap"]["th"] == "ห้องประชุม"
    th = (await api.get(f"{url}?lang=th", headers=headers)).json()
    assert th["title"]["value"] == "ห้องประชุม"


async def test_tenants_are_isolated(api: Api, headers: dict[str, str], tenant: str) -> None:
    await api.post(E, json=room(), headers=headers)
    r = await api.get(f"{E}/urn:ngsi-ld:Room:1", headers={"NGSILD-Tenant": tenant + "x"})
    assert r.status_code == 404
    assert r.json()["type"].endswith("NonexistentTenant")
    r = await api.get(f"{E}?type=Room", headers={"NGSILD-Tenant": tenant + "x"})
    assert r.status_code == 404
    r = await api.get(f"{E}/urn:ngsi-ld:Room:1", headers={"NGSILD-Tenant": "bad tenant!"})
    assert r.status_code == 400


async def test_unknown_route_and_method(api: Api) -> None:
    r = await api.get("/ngsi-ld/v1/nothing")
    assert r.status_code == 404 and "type" in r.json()
    r = await api.request("PATCH", "/ngsi-ld/v1/entities")
    assert r.status_code == 405 and "type" in r.json()


async def test_nul_character_is_refused_everywhere(api: Api, headers: dict[str, str]) -> None:
    """PostgreSQL cannot store U+0000; both engines refuse it at the edge with a 400."""
    body = room(note={"type": "Property", "value": "a\u0000b"})
    r = await api.post(E, json=body, headers=headers)
    assert r.status_code == 400 and "U+0000" in r.json()["detail"]
    for url in (f"{E}/urn:x:%00", f"{E}?type=T%00", f"{E}?q=a%00b", f"{E}?idPattern=%00"):
        r = await api.get(url, headers=headers)
        assert r.status_code == 400, url
    r = await api.post("/ngsi-ld/v1/entityOperations/delete", json=["urn:x:\u0000"],
                       headers=headers)
    assert r.status_code == 400
    # A backslash followed by "u0000" is ordinary text.
    r = await api.post(E, json=room(2, note={"type": "Property", "value": "\\u0000"}),
                       headers=headers)
    assert r.status_code == 201
