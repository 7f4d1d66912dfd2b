"""Platform administration over HTTP: credentials and tenant settings (admin only)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nakhon.broker.api.http import json_response, read_json
from nakhon.broker.api.state import state
from nakhon.core.errors import BadRequestData, ResourceNotFound

BASE = "/nakhon/v1/admin"


async def create_credential(request: Request) -> Response:
    st = state(request)
    principal = await st.access.authenticate(request.headers)
    st.access.require_admin(principal)
    body, _ = await read_json(request, 65536)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise BadRequestData('Body: {"name": str, "role": "admin"|"writer", "tenants": [str]|null}')
    role = body.get("role", "writer")
    tenants = body.get("tenants")
    if role not in ("admin", "writer"):
        raise BadRequestData("role must be 'admin' or 'writer'.")
    if tenants is not None and (
        not isinstance(tenants, list) or not all(isinstance(t, str) for t in tenants)
    ):
        raise BadRequestData("tenants must be null (all) or an array of tenant names.")
    token = await st.access.create_credential(principal, body["name"], role, tenants)
    return json_response(
        {"name": body["name"], "role": role, "tenants": tenants, "token": token}, None, status=201
    )


async def list_credentials(request: Request) -> Response:
    st = state(request)
    principal = await st.access.authenticate(request.headers)
    return json_response(await st.access.list_credentials(principal), None)


async def revoke_credential(request: Request) -> Response:
    st = state(request)
    principal = await st.access.authenticate(request.headers)
    if not await st.access.revoke_credential(principal, request.path_params["cred_id"]):
        raise ResourceNotFound("No such credential.")
    return Response(status_code=204)


async def tenant_settings(request: Request) -> Response:
    st = state(request)
    principal = await st.access.authenticate(request.headers)
    body, _ = await read_json(request, 65536)
    if not isinstance(body, dict) or not isinstance(body.get("anonymousRead"), bool):
        raise BadRequestData('Body: {"anonymousRead": true|false}')
    tenant = request.path_params["tenant"]
    await st.access.set_tenant_anonymous_read(principal, tenant, body["anonymousRead"])
    return Response(orjson.dumps({"tenant": tenant, **body}), media_type="application/json")


routes = [
    Route(f"{BASE}/credentials", create_credential, methods=["POST"]),
    Route(f"{BASE}/credentials", list_credentials, methods=["GET"]),
    Route(f"{BASE}/credentials/{{cred_id}}", revoke_credential, methods=["DELETE"]),
    Route(f"{BASE}/tenants/{{tenant}}", tenant_settings, methods=["PUT"]),
]
