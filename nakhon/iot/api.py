"""HTTP doors of IoT ingest: the registry API, dead letters and metrics, and HTTP ingest.

* Registry (admin or the tenant's writer credential), under ``/nakhon/v1/iot``:
  ``services`` (service groups, keyed by apikey) and ``devices`` (keyed by device id within the
  tenant named by ``NGSILD-Tenant`` or the IoT Agents' ``fiware-service`` header). Bodies are a
  single object or the IoT Agent form ``{"services": [...]}`` / ``{"devices": [...]}``.
* ``GET /nakhon/v1/iot/deadLetters`` and ``GET /nakhon/v1/iot/metrics``.
* Ingest as the IoT Agents' south port: ``POST /iot/json?k=<apikey>&i=<device_id>`` (JSON),
  ``POST /iot/d?k=..&i=..`` and ``GET /iot/d?k=..&i=..&d=<ul>`` (UltraLight), optional
  ``t=<timestamp>``; a group's own ``resource`` path is served too. The API key is the
  device's credential; the answer comes after the measurements are committed.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nakhon.broker.api.http import json_response, read_json
from nakhon.broker.api.state import state
from nakhon.core.auth import Principal
from nakhon.core.errors import (
    BadRequestData,
    InvalidRequest,
    NgsiError,
    PayloadTooLarge,
    ResourceNotFound,
    Unauthorized,
)
from nakhon.iot import stats as reasons
from nakhon.iot.registry import Rejected
from nakhon.iot.runtime import IotRuntime
from nakhon.iot.service import Format

BASE = "/nakhon/v1/iot"
_TENANT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PAGE_MAX = 1000


def iot(request: Request) -> IotRuntime:
    rt: IotRuntime = request.app.state.iot
    return rt


def tenant_of(request: Request) -> str:
    """``NGSILD-Tenant``, else ``fiware-service`` (what IoT Agent scripts send), else ''."""
    tenant = request.headers.get("ngsild-tenant") or request.headers.get("fiware-service") or ""
    if tenant and not _TENANT_RE.match(tenant):
        raise BadRequestData("The tenant must be 1 to 64 letters, digits, '_' or '-'.")
    return tenant


async def _principal(request: Request) -> Principal:
    return await state(request).access.authenticate(request.headers)


def _items(body: Any, key: str) -> list[Any]:
    if isinstance(body, dict) and isinstance(body.get(key), list):
        return list(body[key])
    return [body]


def _page(request: Request) -> tuple[int, int]:
    try:
        limit = int(request.query_params.get("limit", "100"))
        offset = int(request.query_params.get("offset", "0"))
    except ValueError:
        raise BadRequestData("limit and offset must be integers.") from None
    if not (0 <= limit <= PAGE_MAX) or offset < 0:
        raise BadRequestData(f"limit must be 0..{PAGE_MAX} and offset not negative.")
    return limit, offset


# --- registry ---------------------------------------------------------------------------


async def create_services(request: Request) -> Response:
    principal = await _principal(request)
    body, _ = await read_json(request, state(request).settings.max_body_bytes)
    tenant = tenant_of(request)
    created = [await iot(request).registry.create_group(principal, item, tenant)
               for item in _items(body, "services")]
    return json_response({"services": [g.to_doc() for g in created]}, None, status=201)


async def list_services(request: Request) -> Response:
    principal = await _principal(request)
    limit, offset = _page(request)
    tenant = request.headers.get("ngsild-tenant") or request.headers.get("fiware-service")
    groups = await iot(request).registry.list_groups(principal, tenant)
    return json_response({"count": len(groups),
                          "services": [g.to_doc() for g in groups[offset:offset + limit]]}, None)


async def get_service(request: Request) -> Response:
    group = await iot(request).registry.get_group(await _principal(request),
                                                  request.path_params["apikey"])
    return json_response(group.to_doc(), None)


async def delete_service(request: Request) -> Response:
    await iot(request).registry.delete_group(await _principal(request),
                                             request.path_params["apikey"])
    return Response(status_code=204)


async def create_devices(request: Request) -> Response:
    principal = await _principal(request)
    body, _ = await read_json(request, state(request).settings.max_body_bytes)
    tenant = tenant_of(request)
    created = [await iot(request).registry.create_device(principal, item, tenant)
               for item in _items(body, "devices")]
    return json_response({"devices": [d.to_doc() for d in created]}, None, status=201)


async def list_devices(request: Request) -> Response:
    limit, offset = _page(request)
    devices, count = await iot(request).registry.list_devices(
        await _principal(request), tenant_of(request), limit=limit, offset=offset)
    return json_response({"count": count, "devices": [d.to_doc() for d in devices]}, None)


async def get_device(request: Request) -> Response:
    device = await iot(request).registry.get_device(
        await _principal(request), tenant_of(request), request.path_params["device_id"])
    return json_response(device.to_doc(), None)


async def delete_device(request: Request) -> Response:
    await iot(request).registry.delete_device(
        await _principal(request), tenant_of(request), request.path_params["device_id"])
    return Response(status_code=204)


async def dead_letters(request: Request) -> Response:
    """Newest first, paged in storage; a writer sees the letters of its tenants, an admin
    all of them (and alone those whose tenant is unknown)."""
    principal = await _principal(request)
    if principal.anonymous:
        raise Unauthorized("Dead letters need a credential.")
    limit, offset = _page(request)
    letters = await iot(request).stats.letters(principal.tenants, limit, offset)
    return json_response([d.to_doc() for d in letters], None)


async def metrics(request: Request) -> Response:
    principal = await _principal(request)
    if principal.anonymous:
        raise Unauthorized("Metrics need a credential.")
    rt = iot(request)
    body = rt.stats.snapshot()
    body["pending"] = rt.batcher.pending
    body["mqtt"] = {"enabled": rt.mqtt is not None,
                    "connected": bool(rt.mqtt and rt.mqtt.connected.is_set())}
    return json_response(body, None)


# --- HTTP ingest --------------------------------------------------------------------------


async def _raw_body(request: Request) -> bytes:
    limit = state(request).settings.max_body_bytes
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def _ingest(request: Request, fmt: Format, payload: bytes) -> Response:
    rt = iot(request)
    apikey = request.query_params.get("k", "")
    device_id = request.query_params.get("i", "")
    if not apikey or not device_id:
        rt.stats.counters["received"] += 1
        rt.stats.reject(reasons.BAD_TOPIC, "the query must name k=<apikey> and i=<device_id>",
                        transport="http", payload=payload)
        raise InvalidRequest("The query must name k=<apikey> and i=<device_id>.")
    try:
        items = await rt.ingestor.prepare(
            transport="http", apikey=apikey, device_id=device_id, payload=payload, fmt=fmt,
            timestamp=request.query_params.get("t") or None, topic=request.url.path)
    except Rejected as rej:
        if rej.reason == reasons.BAD_PAYLOAD:
            raise BadRequestData(rej.detail) from None
        if rej.reason == reasons.WRONG_APIKEY:
            raise Unauthorized(rej.detail) from None
        raise ResourceNotFound(rej.detail) from None
    results = await rt.batcher.submit(items, "http")
    errors = [r for r in results if isinstance(r, Exception)]
    if errors:
        err = errors[0]
        raise err if isinstance(err, NgsiError) else BadRequestData(str(err))
    return Response(status_code=200)


async def ingest_json(request: Request) -> Response:
    return await _ingest(request, "json", await _raw_body(request))


async def ingest_ul(request: Request) -> Response:
    if request.method == "GET":
        payload = request.query_params.get("d", "").encode()
    else:
        payload = await _raw_body(request)
    return await _ingest(request, "ul", payload)


async def ingest_resource(request: Request) -> Response:
    """A group's own ``resource`` path (e.g. ``/iot/city``): the payload says its format."""
    path = "/iot/" + request.path_params["resource"]
    apikey = request.query_params.get("k", "")
    group = await iot(request).registry.group_for_resource(apikey, path)
    if group is None:
        raise ResourceNotFound(f"No service group serves {path} with this apikey.")
    payload = await _raw_body(request)
    return await _ingest(request, "auto", payload)


routes = [
    Route(f"{BASE}/services", create_services, methods=["POST"]),
    Route(f"{BASE}/services", list_services, methods=["GET"]),
    Route(f"{BASE}/services/{{apikey}}", get_service, methods=["GET"]),
    Route(f"{BASE}/services/{{apikey}}", delete_service, methods=["DELETE"]),
    Route(f"{BASE}/devices", create_devices, methods=["POST"]),
    Route(f"{BASE}/devices", list_devices, methods=["GET"]),
    Route(f"{BASE}/devices/{{device_id}}", get_device, methods=["GET"]),
    Route(f"{BASE}/devices/{{device_id}}", delete_device, methods=["DELETE"]),
    Route(f"{BASE}/deadLetters", dead_letters, methods=["GET"]),
    Route(f"{BASE}/metrics", metrics, methods=["GET"]),
    Route("/iot/json", ingest_json, methods=["POST"]),
    Route("/iot/d", ingest_ul, methods=["GET", "POST"]),
    Route("/iot/{resource:path}", ingest_resource, methods=["POST"]),
]
