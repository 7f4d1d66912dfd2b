"""/entities routes (clause 6.4–6.7 of ETSI GS CIM 009)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nakhon.broker import render, validate
from nakhon.broker.api import params as p
from nakhon.broker.api.http import (
    GEO_JSON,
    JSON,
    Call,
    json_response,
    negotiate,
    no_content,
    read_json,
)
from nakhon.broker.api.state import ApiState, parse_fragment, state
from nakhon.broker.model import Entity
from nakhon.core.errors import BadRequestData
from nakhon.storage.base import Outcome

BASE = "/ngsi-ld/v1"


def check_uri(value: str, what: str = "Entity id") -> str:
    """Ids in paths and bodies must be URIs (a scheme, then something)."""
    scheme, sep, rest = value.partition(":")
    if (
        not sep
        or not rest
        or not scheme
        or not scheme[0].isalpha()
        or any(c in value for c in ' <>"{}|\\^`')
    ):
        raise BadRequestData(f"{what} {value!r} is not a valid URI.")
    return value


async def _body_call(request: Request, st: ApiState, *, merge: bool = False) -> tuple[Any, Call]:
    principal = await st.access.authenticate(request.headers)
    body, ctype = await read_json(request, st.settings.max_body_bytes, merge_patch=merge)
    call = await st.call(request, principal, body, ctype)
    return body, call


async def read_call(request: Request, st: ApiState) -> Call:
    """Authenticate a request without a body and resolve its @context (Link header)."""
    principal = await st.access.authenticate(request.headers)
    return await st.call(request, principal)


def render_one(entity: Entity, call: Call, mtype: str, opts: render.RenderOptions) -> Any:
    if mtype == GEO_JSON:
        return render.render_geojson_feature(entity, call.terms.compact, opts)
    return render.render_entity(entity, call.terms.compact, opts)


async def create_entity(request: Request) -> Response:
    st = state(request)
    body, call = await _body_call(request, st)
    entity = validate.parse_entity(body, call.terms.expand)
    check_uri(entity.id)
    await st.broker.create_entity(call.principal, call.tenant, entity)
    headers = {"Location": f"{BASE}/entities/{entity.id}"}
    if call.tenant:
        headers["NGSILD-Tenant"] = call.tenant
    return Response(status_code=201, headers=headers)


async def query_entities(request: Request) -> Response:
    st = state(request)
    mtype = negotiate(request, geojson=True)
    call = await read_call(request, st)
    params = request.query_params
    query = p.entity_query(params, call.terms, default_limit=st.settings.default_limit)
    opts = p.render_options(params, call.terms)
    page = await st.broker.query_entities(call.principal, call.tenant, query)
    return page_response(page, query, opts, call, mtype)


def page_response(
    page: Any, query: Any, opts: render.RenderOptions, call: Call, mtype: str
) -> Response:
    headers: dict[str, str] = {}
    if page.count is not None:
        headers["NGSILD-Results-Count"] = str(page.count)
    if mtype == GEO_JSON:
        data: Any = render.render_geojson_collection(page.entities, call.terms.compact, opts)
    else:
        data = [render.render_entity(e, call.terms.compact, opts) for e in page.entities]
    return json_response(data, call, mtype, headers=headers)


async def purge_entities(request: Request) -> Response:
    st = state(request)
    call = await read_call(request, st)
    params = request.query_params
    if not params.get("type") and not params.get("q") and not params.get("id"):
        raise BadRequestData("Purging entities needs type, id or q.")
    query = p.entity_query(params, call.terms, default_limit=st.settings.default_limit)
    await st.broker.purge_entities(call.principal, call.tenant, query)
    return no_content(call)


async def retrieve_entity(request: Request) -> Response:
    st = state(request)
    mtype = negotiate(request, geojson=True)
    call = await read_call(request, st)
    eid = check_uri(request.path_params["entity_id"])
    opts = p.render_options(request.query_params, call.terms)
    entity = await st.broker.retrieve_entity(call.principal, call.tenant, eid)
    return json_response(render_one(entity, call, mtype, opts), call, mtype)


def _body_entity(body: Any, eid: str, call: Call, *, require_type: bool) -> Entity:
    if not isinstance(body, dict):
        raise BadRequestData("The body must be a JSON object.")
    if "id" in body and body["id"] != eid:
        raise BadRequestData("The id in the body differs from the id in the path.")
    body = {**body, "id": eid}
    return validate.parse_entity(body, call.terms.expand, require_type=require_type)


async def replace_entity(request: Request) -> Response:
    st = state(request)
    eid = check_uri(request.path_params["entity_id"])
    body, call = await _body_call(request, st)
    entity = _body_entity(body, eid, call, require_type=True)
    await st.broker.replace_entity(call.principal, call.tenant, entity)
    return no_content(call)


async def merge_entity(request: Request) -> Response:
    st = state(request)
    eid = check_uri(request.path_params["entity_id"])
    body, call = await _body_call(request, st, merge=True)
    patch = _body_entity(body, eid, call, require_type=False)
    await st.broker.merge_entity(call.principal, call.tenant, patch)
    return no_content(call)


async def delete_entity(request: Request) -> Response:
    st = state(request)
    call = await read_call(request, st)
    eid = check_uri(request.path_params["entity_id"])
    await st.broker.delete_entity(call.principal, call.tenant, eid)
    return no_content(call)


def _update_result(outcome: Outcome, call: Call) -> Response:
    result = outcome.result if isinstance(outcome.result, dict) else None
    if result and result.get("notUpdated"):
        compacted = {
            "updated": [call.terms.compact(a) for a in result.get("updated", [])],
            "notUpdated": [
                {**n, "attributeName": call.terms.compact(n["attributeName"])}
                for n in result["notUpdated"]
            ],
        }
        return json_response(compacted, None, JSON, status=207)
    return no_content(call)


async def append_attrs(request: Request) -> Response:
    st = state(request)
    eid = check_uri(request.path_params["entity_id"])
    body, call = await _body_call(request, st)
    opts = p.options_of(request.query_params)
    if not isinstance(body, dict):
        raise BadRequestData("The body must be a JSON object of attributes.")
    attrs = validate.parse_attributes(body, call.terms.expand)
    types = None
    if "type" in body:
        types = validate.parse_entity({"id": eid, "type": body["type"]}, call.terms.expand).types
    outcome = await st.broker.append_attrs(
        call.principal, call.tenant, eid, attrs, no_overwrite="noOverwrite" in opts, types=types
    )
    return _update_result(outcome, call)


async def update_attrs(request: Request) -> Response:
    st = state(request)
    eid = check_uri(request.path_params["entity_id"])
    body, call = await _body_call(request, st)
    if not isinstance(body, dict):
        raise BadRequestData("The body must be a JSON object of attributes.")
    attrs = validate.parse_attributes(body, call.terms.expand)
    outcome = await st.broker.update_attrs(call.principal, call.tenant, eid, attrs)
    return _update_result(outcome, call)


async def partial_update_attr(request: Request) -> Response:
    st = state(request)
    eid = check_uri(request.path_params["entity_id"])
    body, call = await _body_call(request, st)
    attr = call.terms.expand(request.path_params["attr_id"])
    fragment = parse_fragment(attr, body, call.terms.expand)
    await st.broker.partial_update_attr(call.principal, call.tenant, eid, attr, fragment)
    return no_content(call)


async def replace_attr(request: Request) -> Response:
    st = state(request)
    eid = check_uri(request.path_params["entity_id"])
    body, call = await _body_call(request, st)
    attr = call.terms.expand(request.path_params["attr_id"])
    instances = validate.parse_attribute(attr, body, call.terms.expand)
    await st.broker.replace_attr(call.principal, call.tenant, eid, attr, instances)
    return no_content(call)


async def delete_attr(request: Request) -> Response:
    st = state(request)
    eid = check_uri(request.path_params["entity_id"])
    call = await read_call(request, st)
    attr = call.terms.expand(request.path_params["attr_id"])
    params = request.query_params
    await st.broker.delete_attr(
        call.principal,
        call.tenant,
        eid,
        attr,
        dataset_id=params.get("datasetId"),
        delete_all=p.bool_param(params, "deleteAll"),
    )
    return no_content(call)


# Entity ids are URIs and may hold "/" (sent percent-encoded, decoded before routing), so ids
# match with the path convertor and the longer /attrs routes come first.
_ID = "{entity_id:path}"
routes = [
    Route(f"{BASE}/entities", create_entity, methods=["POST"]),
    Route(f"{BASE}/entities", query_entities, methods=["GET"]),
    Route(f"{BASE}/entities", purge_entities, methods=["DELETE"]),
    Route(f"{BASE}/entities/{_ID}/attrs/{{attr_id}}", partial_update_attr, methods=["PATCH"]),
    Route(f"{BASE}/entities/{_ID}/attrs/{{attr_id}}", replace_attr, methods=["PUT"]),
    Route(f"{BASE}/entities/{_ID}/attrs/{{attr_id}}", delete_attr, methods=["DELETE"]),
    Route(f"{BASE}/entities/{_ID}/attrs", append_attrs, methods=["POST"]),
    Route(f"{BASE}/entities/{_ID}/attrs", update_attrs, methods=["PATCH"]),
    Route(f"{BASE}/entities/{_ID}", retrieve_entity, methods=["GET"]),
    Route(f"{BASE}/entities/{_ID}", replace_entity, methods=["PUT"]),
    Route(f"{BASE}/entities/{_ID}", merge_entity, methods=["PATCH"]),
    Route(f"{BASE}/entities/{_ID}", delete_entity, methods=["DELETE"]),
]
