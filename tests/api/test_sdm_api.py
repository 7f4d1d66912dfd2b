"""Smart Data Models examples through the HTTP API, on both engines.

Each domain's ``context.jsonld`` is added through ``/jsonldContexts`` (the examples cite
raw.githubusercontent.com, which a test must not need), the normalized example is POSTed as
JSON-LD with that hosted @context, and read back: normalized equals what was sent, keyValues
follows clause 4.5.4, GeoJSON carries the location as geometry. Examples the spec forbids are
rejected with BadRequestData (the reasons are in tests/broker/test_sdm_roundtrip.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.broker.test_sdm_roundtrip import REJECTED
from tests.conftest import Api

SDM = Path(__file__).resolve().parents[1] / "data" / "sdm"
MODELS = sorted(SDM.glob("*/*/example-normalized.jsonld"))
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
SYSTEM = {"createdAt", "modifiedAt"}


def key_values(entity: dict[str, Any]) -> dict[str, Any]:
    """Clause 4.5.4, independently of the broker's renderer (single-instance attributes)."""
    out: dict[str, Any] = {}
    for name, attr in entity.items():
        if name in ("id", "type") or not isinstance(attr, dict):
            out[name] = attr
        elif attr.get("type") == "Relationship":
            out[name] = attr["object"]
        else:
            out[name] = attr["value"]
    return out


async def hosted_context(api: Api, domain: Path, headers: dict[str, str]) -> str:
    doc = json.loads((domain / "context.jsonld").read_text())
    r = await api.post("/ngsi-ld/v1/jsonldContexts", json=doc, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.headers["location"])


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.parent.name)
async def test_sdm_example_roundtrip(api: Api, tenant: str, path: Path) -> None:
    example = json.loads(path.read_text())
    plain = {k: v for k, v in example.items() if k != "@context" and k not in SYSTEM}
    url = await hosted_context(api, path.parents[1], {"Content-Type": "application/json"})
    body = {**plain, "@context": [url, CORE]}
    h = {"NGSILD-Tenant": tenant, "Content-Type": "application/ld+json"}
    r = await api.post("/ngsi-ld/v1/entities", json=body, headers=h)
    if path.parent.name in REJECTED:
        assert r.status_code == 400, r.text
        assert r.json()["type"].endswith("BadRequestData")
        return
    assert r.status_code == 201, r.text
    link = f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    read = {"NGSILD-Tenant": tenant, "Link": link}
    entity_url = f"/ngsi-ld/v1/entities/{quote(plain['id'], safe='')}"
    got = (await api.get(entity_url, headers=read)).json()
    assert got == plain
    kv = (await api.get(entity_url + "?options=keyValues", headers=read)).json()
    assert kv == key_values(plain)
    feature = (await api.get(entity_url, headers={**read, "Accept": "application/geo+json"})).json()
    assert feature["type"] == "Feature" and feature["id"] == plain["id"]
    location = plain.get("location")
    assert feature["geometry"] == (location["value"] if location else None)
