"""/temporal routes (ETSI GS CIM 009 V1.8.1, clauses 6.18 – 6.24): the HTTP edge only.

Parameters are parsed here into an ``EntityQuery`` (which entities) and a ``TemporalQuery``
(which instances, which representation); the service does the rest. A partial answer is
``206 Partial Content`` with ``Content-Range: date-time <start>-<end>/<lastN or *>`` (clause
6.3.10, the header Stellio sends).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nakhon.broker.api import params as p
from nakhon.broker.api.entities import check_uri, read_call
from nakhon.broker.api.http import Call, json_response, negotiate, no_content, read_json
from nakhon.broker.api.state import ApiState, parse_fragment, state
from nakhon.broker.render import RenderOptions
from nakhon.core.errors import BadRequestData, ResourceNotFound
from nakhon.storage.rows import utc_now
from nakhon.temporal import provision
from nakhon.temporal.model import (
    Representation,
    TemporalQuery,
    build_query,
    format_time,
    parse_instance_id,
)
from nakhon.temporal.represent import render_temporal
from nakhon.temporal.service import Temporal, TemporalResult

BASE = "/ngsi-ld/v1/temporal"
_OPTIONS = {"temporalValues", "aggregatedValues", "sysAttrs", "normalized", "concise",
            "keyValues", "simplified"}
_FORMATS = {"normalized", "concise", "temporalValues", "aggregatedValues", "keyValues",
            "simplified"}


def temporal_service(request: Request) -> Temporal:
    """The app's Temporal service, made on first use from the broker's state."""
    app_state = request.app.state
    service: Temporal | None = getattr(app_state, "temporal", None)
    if service is None:
        st = state(request)
        service = Temporal(
            app_state.storage,
            st.access,
            st.broker,
            instance_limit=int(st.settings.temporal_instance_limit),
        )
        app_state.temporal = service
    return service


def representation(params: Mapping[str, str]) -> tuple[Representation, bool, str]:
    """(temporal representation, sysAttrs, attribute format) from ``options`` and ``format``."""
    opts = set(p.split_list(params.get("options")) or [])
    unknown = opts - _OPTIONS
    if unknown:
        raise BadRequestData(f"Unknown options: {', '.join(sorted(unknown))}.")
    fmt = params.get("format")
    if fmt is not None and fmt not in _FORMATS:
        raise BadRequestData(f"Unknown format {fmt!r}.")
    chosen = {fmt} if fmt else set()
    chosen |= opts - {"sysAttrs"}
    chosen = {"temporalValues" if c in ("keyValues", "simplified") else c for c in chosen}
    if {"temporalValues", "aggregatedValues"} <= chosen:
        raise BadRequestData("temporalValues and aggregatedValues cannot be asked together.")
    rep: Representation = "normalized"
    for candidate in ("aggregatedValues", "temporalValues", "concise"):
        if candidate in chosen:
            rep = candidate
            break
    return rep, "sysAttrs" in opts, "concise" if rep == "concise" else "normalized"


def temporal_query(params: Mapping[str, Any]) -> TemporalQuery:
    rep, _, _ = representation(params)
    methods = params.get("aggrMethods")
    if isinstance(methods, str):
        methods = p.split_list(methods)
    return build_query(
        timerel=params.get("timerel"),
        time_at=params.get("timeAt"),
        end_time_at=params.get("endTimeAt"),
        timeproperty=params.get("timeproperty"),
        last_n=params.get("lastN"),
        representation=rep,
        aggr_methods=methods,
        aggr_period=params.get("aggrPeriodDuration"),
    )


def render_options(params: Mapping[str, str], call: Call) -> RenderOptions:
    _, sys_attrs, fmt = representation(params)
    plain = {k: v for k, v in params.items() if k not in ("options", "format")}
    opts = p.render_options(plain, call.terms)
    opts.format = fmt  # type: ignore[assignment]
    opts.sys_attrs = sys_attrs
    return opts


def respond(
    result: TemporalResult, query: TemporalQuery, call: Call, opts: RenderOptions, mtype: str,
    *, single: bool = False,
) -> Response:
    """200, or 206 with Content-Range when instances were left out (clause 6.3.10)."""
    data = [render_temporal(e, query, call.terms.compact, opts) for e in result.entities]
    headers: dict[str, str] = {}
    status = 200
    if result.count is not None:
        headers["NGSILD-Results-Count"] = str(result.count)
    if result.range is not None:
        r = result.range
        size = "*" if r.size is None else str(r.size)
        headers["Content-Range"] = f"date-time {format_time(r.start)}-{format_time(r.end)}/{size}"
        status = 206
    return json_response(data[0] if single else data, call, mtype, status=status,
                         headers=headers)


async def _body_call(request: Request, st: ApiState) -> tuple[Any, Call]:
    principal = await st.access.authenticate(request.headers)
    body, ctype = await read_json(request, st.settings.max_body_bytes)
    return body, await st.call(request, principal, body, ctype)


# --- consumption -------------------------------------------------------------------------------


async def retrieve(request: Request) -> Response:
    st = state(request)
    mtype = negotiate(request)
    call = await read_call(request, st)
    eid = check_uri(request.path_params["entity_id"])
    params = request.query_params
    query = temporal_query(params)
    opts = render_options(params, call)
    attrs = sorted(opts.attrs) if opts.attrs else None
    result = await temporal_service(request).retrieve(
        call.principal, call.tenant, eid, query, attrs
    )
    return respond(result, query, call, opts, mtype, single=True)


async def query_entities(request: Request) -> Response:
    st = state(request)
    mtype = negotiate(request)
    call = await read_call(request, st)
    params = request.query_params
    query = temporal_query(params)
    selection = p.entity_query(params, call.terms, default_limit=st.settings.default_limit)
    opts = render_options(params, call)
    result = await temporal_service(request).query(call.principal, call.tenant, selection, query)
    return respond(result, query, call, opts, mtype)


async def query_post(request: Request) -> Response:
    st = state(request)
    mtype = negotiate(request)
    body, call = await _body_call(request, st)
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "@context"}
    selection, merged = p.query_from_body(
        body, request.query_params, call.terms, default_limit=st.settings.default_limit
    )
    params: dict[str, Any] = dict(merged)
    temporal_q = body.get("temporalQ")
    if temporal_q is not None:
        if not isinstance(temporal_q, dict):
            raise BadRequestData("Query.temporalQ must be an object.")
        for key in ("timerel", "timeAt", "endTimeAt", "timeproperty", "lastN"):
            if key in temporal_q:
                params[key] = temporal_q[key]
    for key in ("aggrMethods", "aggrPeriodDuration"):
        if key in body:
            value = body[key]
            params[key] = value if isinstance(value, list) else str(value)
    query = temporal_query(params)
    opts = render_options({k: v for k, v in params.items() if isinstance(v, str)}, call)
    result = await temporal_service(request).query(call.principal, call.tenant, selection, query)
    return respond(result, query, call, opts, mtype)


# --- provision ---------------------------------------------------------------------------------


async def upsert(request: Request) -> Response:
    st = state(request)
    body, call = await _body_call(request, st)
    entity, instances = provision.parse_temporal_entity(body, call.terms.expand)
    check_uri(entity.id)
    outcome = await temporal_service(request).upsert(call.principal, call.tenant, entity,
                                                     instances)
    if outcome.created:
        headers = {"Location": f"{BASE}/entities/{entity.id}"}
        if call.tenant:
            headers["NGSILD-Tenant"] = call.tenant
        return Response(status_code=201, headers=headers)
    return no_content(call)


async def append_attrs(request: Request) -> Response:
    st = state(request)
    eid = check_uri(request.path_params["entity_id"])
    body, call = await _body_call(request, st)
    if not isinstance(body, dict):
        raise BadRequestData("The body must be a temporal entity fragment (a JSON object).")
    skip = frozenset({"@context", "id", "type", "@id", "@type", "scope"})
    instances = provision.parse_temporal_attrs(body, call.terms.expand, skip)
    if not instances:
        raise BadRequestData("The fragment has no attribute instances.")
    await temporal_service(request).append(call.principal, call.tenant, eid, instances)
    return no_content(call)


async def delete_entity(request: Request) -> Response:
    st = state(request)
    call = await read_call(request, st)
    eid = check_uri(request.path_params["entity_id"])
    await temporal_service(request).delete_entity(call.principal, call.tenant, eid)
    return no_content(call)


async def delete_attr(request: Request) -> Response:
    st = state(request)
    call = await read_call(request, st)
    eid = check_uri(request.path_params["entity_id"])
    attr = call.terms.expand(request.path_params["attr_id"])
    params = request.query_params
    await temporal_service(request).delete_attr(
        call.principal,
        call.tenant,
        eid,
        attr,
        dataset_id=params.get("datasetId"),
        delete_all=p.bool_param(params, "deleteAll"),
    )
    return no_content(call)


def _instance(request: Request) -> int:
    raw = check_uri(request.path_params["instance_id"], "instanceId")
    hid = parse_instance_id(raw)
    if hid is None:
        raise ResourceNotFound(f"No attribute instance {raw}.")
    return hid


async def modify_instance(request: Request) -> Response:
    st = state(request)
    eid = check_uri(request.path_params["entity_id"])
    hid = _instance(request)
    body, call = await _body_call(request, st)
    name = request.path_params["attr_id"]
    attr = call.terms.expand(name)
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "@context"}
        # EntityTemporalFragment: {name: instance or [instance]}; a bare fragment is accepted.
        inner = body.get(name, body.get(attr)) if len(body) == 1 else None
        if inner is not None:
            body = inner[0] if isinstance(inner, list) and len(inner) == 1 else inner
    [fragment] = parse_fragment(name, body, call.terms.expand)[:1]
    await temporal_service(request).modify_instance(
        call.principal, call.tenant, eid, attr, hid, fragment, utc_now()
    )
    return no_content(call)


async def delete_instance(request: Request) -> Response:
    st = state(request)
    call = await read_call(request, st)
    eid = check_uri(request.path_params["entity_id"])
    hid = _instance(request)
    attr = call.terms.expand(request.path_params["attr_id"])
    await temporal_service(request).delete_instance(call.principal, call.tenant, eid, attr, hid)
    return no_content(call)


_ID = "{entity_id:path}"
_ATTR = f"{BASE}/entities/{_ID}/attrs/{{attr_id}}"
routes = [
    Route(f"{BASE}/entities", query_entities, methods=["GET"]),
    Route(f"{BASE}/entities", upsert, methods=["POST"]),
    Route(f"{BASE}/entityOperations/query", query_post, methods=["POST"]),
    Route(f"{_ATTR}/{{instance_id}}", modify_instance, methods=["PATCH"]),
    Route(f"{_ATTR}/{{instance_id}}", delete_instance, methods=["DELETE"]),
    Route(_ATTR, delete_attr, methods=["DELETE"]),
    Route(f"{BASE}/entities/{_ID}/attrs", append_attrs, methods=["POST"]),
    Route(f"{BASE}/entities/{_ID}", retrieve, methods=["GET"]),
    Route(f"{BASE}/entities/{_ID}", delete_entity, methods=["DELETE"]),
]
