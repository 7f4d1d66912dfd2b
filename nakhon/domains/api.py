"""HTTP edge of the domains capability: ``/nakhon/v1/domains`` and ``/nakhon/v1/alert-rules``.

The tenant is the ``NGSILD-Tenant`` header, as on the NGSI-LD API; credentials as everywhere
(reads follow the tenant's anonymous-read setting, writes need a credential covering the
tenant). Errors are ProblemDetails. Handlers only parse, call the service, and render.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nakhon.broker.api.http import JSON, json_response, media_type, no_content, tenant_of
from nakhon.broker.api.state import state
from nakhon.core.auth import Principal
from nakhon.core.errors import BadRequestData, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from nakhon.domains.alert_service import AlertRules
from nakhon.domains.catalogue import Catalogue, check_lang

BASE = "/nakhon/v1"
MAX_BODY = 262_144


async def _who(request: Request) -> tuple[Principal, str]:
    st = state(request)
    principal = await st.access.authenticate(request.headers)
    return principal, tenant_of(request)


async def _body(request: Request, *, optional: bool = False) -> Any:
    """The JSON body; ``{}`` for an absent body when ``optional``."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise PayloadTooLarge(f"The body is larger than {MAX_BODY} bytes.")
    if not raw.strip():
        if optional:
            return {}
        raise InvalidRequest("The request body is empty.")
    ctype = media_type(request.headers.get("content-type"))
    if ctype not in (JSON, "application/ld+json"):
        raise UnsupportedMediaType(f"Content-Type must be {JSON}; got {ctype or 'nothing'}.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}") from None


def _headers(tenant: str) -> dict[str, str]:
    return {"NGSILD-Tenant": tenant} if tenant else {}


async def list_domains(request: Request) -> Response:
    principal, tenant = await _who(request)
    lang = check_lang(request.query_params.get("lang"))
    catalogue = Catalogue(state(request).broker)
    domains = await catalogue.domains(principal, tenant)
    return json_response([d.doc(lang) for d in domains], None, headers=_headers(tenant))


async def get_domain(request: Request) -> Response:
    principal, tenant = await _who(request)
    lang = check_lang(request.query_params.get("lang"))
    catalogue = Catalogue(state(request).broker)
    domain = await catalogue.domain(principal, tenant, request.path_params["domain_id"])
    counts = await catalogue.entity_counts(principal, tenant, domain)
    doc = domain.doc(lang, with_types=True)
    for entry in doc["types"]:
        entry["entityCount"] = counts[entry["type"]]
    doc["entityCount"] = sum(counts.values())
    return json_response(doc, None, headers=_headers(tenant))


async def put_domain_type(request: Request) -> Response:
    principal, tenant = await _who(request)
    body = await _body(request, optional=True)
    if not isinstance(body, dict):
        raise BadRequestData('The body must be a JSON object: {"iri": ..., "name": {...}}.')
    catalogue = Catalogue(state(request).broker)
    domain = await catalogue.put_type(
        principal, tenant, request.path_params["domain_id"], request.path_params["type"], body
    )
    return json_response(domain.doc(with_types=True), None, headers=_headers(tenant))


async def delete_domain_type(request: Request) -> Response:
    principal, tenant = await _who(request)
    catalogue = Catalogue(state(request).broker)
    await catalogue.delete_type(
        principal, tenant, request.path_params["domain_id"], request.path_params["type"]
    )
    return no_content(None, _headers(tenant))


async def get_alert_rules(request: Request) -> Response:
    principal, tenant = await _who(request)
    doc = await AlertRules(state(request).broker).get(principal, tenant)
    return json_response(doc, None, headers=_headers(tenant))


async def put_alert_rules(request: Request) -> Response:
    principal, tenant = await _who(request)
    body = await _body(request)
    doc = await AlertRules(state(request).broker).put(principal, tenant, body)
    return json_response(doc, None, headers=_headers(tenant))


async def delete_alert_rules(request: Request) -> Response:
    principal, tenant = await _who(request)
    doc = await AlertRules(state(request).broker).reset(principal, tenant)
    return json_response(doc, None, headers=_headers(tenant))


routes = [
    Route(f"{BASE}/domains", list_domains, methods=["GET"]),
    Route(f"{BASE}/domains/{{domain_id}}", get_domain, methods=["GET"]),
    Route(f"{BASE}/domains/{{domain_id}}/types/{{type}}", put_domain_type, methods=["PUT"]),
    Route(f"{BASE}/domains/{{domain_id}}/types/{{type}}", delete_domain_type, methods=["DELETE"]),
    Route(f"{BASE}/alert-rules", get_alert_rules, methods=["GET"]),
    Route(f"{BASE}/alert-rules", put_alert_rules, methods=["PUT"]),
    Route(f"{BASE}/alert-rules", delete_alert_rules, methods=["DELETE"]),
]
