"""Credentials, anonymous reads and tenant isolation with authentication ON, on both engines."""

from __future__ import annotations

from tests.conftest import Api

E = "/ngsi-ld/v1/entities"
ADMIN = "/nakhon/v1/admin"


def body(n: int = 1) -> dict[str, object]:
    return {"id": f"urn:ngsi-ld:Thing:{n}", "type": "Thing", "v": {"type": "Property", "value": n}}


async def test_writes_need_a_credential(secured_api: Api, tenant: str) -> None:
    api = secured_api
    assert api.admin_token, "the first start must write an admin token"
    h = {"NGSILD-Tenant": tenant}
    r = await api.post(E, json=body(), headers=h)
    assert r.status_code == 401 and r.json()["type"].endswith("Unauthorized")
    r = await api.post(E, json=body(), headers={**h, "Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = await api.post(E, json=body(), headers={**h, "Authorization": f"Bearer {api.admin_token}"})
    assert r.status_code == 201
    # Anonymous reads are on by default.
    assert (await api.get(f"{E}/urn:ngsi-ld:Thing:1", headers=h)).status_code == 200


async def test_writer_credentials_are_tenant_scoped(secured_api: Api, tenant: str) -> None:
    api = secured_api
    admin = {"Authorization": f"Bearer {api.admin_token}"}
    r = await api.post(
        f"{ADMIN}/credentials",
        json={"name": "sensor-gw", "role": "writer", "tenants": [tenant]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    mine = {"NGSILD-Tenant": tenant, "X-API-Key": token}
    other = {"NGSILD-Tenant": tenant + "o", "X-API-Key": token}
    assert (await api.post(E, json=body(), headers=mine)).status_code == 201
    r = await api.post(E, json=body(), headers=other)
    assert r.status_code == 403
    r = await api.post(f"{ADMIN}/credentials", json={"name": "x"}, headers={"X-API-Key": token})
    assert r.status_code == 403
    listed = (await api.get(f"{ADMIN}/credentials", headers=admin)).json()
    assert all("token" not in c for c in listed)
    cred = next(c for c in listed if c["name"] == "sensor-gw")
    assert (await api.delete(f"{ADMIN}/credentials/{cred['id']}", headers=admin)).status_code == 204
    assert (await api.post(E, json=body(2), headers=mine)).status_code == 401


async def test_anonymous_read_per_tenant(secured_api: Api, tenant: str) -> None:
    api = secured_api
    admin = {"Authorization": f"Bearer {api.admin_token}"}
    await api.post(E, json=body(), headers={**admin, "NGSILD-Tenant": tenant})
    r = await api.put(f"{ADMIN}/tenants/{tenant}", json={"anonymousRead": False}, headers=admin)
    assert r.status_code == 200
    r = await api.get(f"{E}/urn:ngsi-ld:Thing:1", headers={"NGSILD-Tenant": tenant})
    assert r.status_code == 401
    r = await api.get(f"{E}/urn:ngsi-ld:Thing:1", headers={**admin, "NGSILD-Tenant": tenant})
    assert r.status_code == 200
