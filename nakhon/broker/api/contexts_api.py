"""/jsonldContexts routes (clause 5.13): list, serve, add, delete/reload stored @contexts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nakhon.broker import contexts
from nakhon.broker.api import params as p
from nakhon.broker.api.entities import BASE
from nakhon.broker.api.http import JSON, JSON_LD, json_response, negotiate, read_json
from nakhon.broker.api.state import state


def base_url(request: Request) -> str:
    """Where this server is reached, as the client sees it (for hosted @context URLs)."""
    return str(request.base_url).rstrip("/")


async def list_contexts(request: Request) -> Response:
    st = state(request)
    negotiate(request)
    params = request.query_params
    data = await contexts.list_contexts(
        st.resolver, p.bool_param(params, "details"), params.get("kind")
    )
    return json_response(data, None, JSON)


async def get_context(request: Request) -> Response:
    st = state(request)
    params = request.query_params
    details = p.bool_param(params, "details")
    mtype = negotiate(request)
    data = await contexts.get_context(st.resolver, request.path_params["context_id"], details)
    return json_response(data, None, JSON if details else (mtype if mtype == JSON_LD else JSON))


async def add_context(request: Request) -> Response:
    st = state(request)
    principal = await st.access.authenticate(request.headers)
    st.access.require_write(principal, "")
    body, _ = await read_json(request, st.settings.max_body_bytes)
    info = await contexts.add_context(st.resolver, body, base_url(request))
    return Response(status_code=201, headers={"Location": info.url})


async def delete_context(request: Request) -> Response:
    st = state(request)
    principal = await st.access.authenticate(request.headers)
    st.access.require_write(principal, "")
    await contexts.delete_context(
        st.resolver,
        request.path_params["context_id"],
        p.bool_param(request.query_params, "reload"),
    )
    return Response(status_code=204)


routes = [
    Route(f"{BASE}/jsonldContexts", list_contexts, methods=["GET"]),
    Route(f"{BASE}/jsonldContexts", add_context, methods=["POST"]),
    Route(f"{BASE}/jsonldContexts/{{context_id:path}}", get_context, methods=["GET"]),
    Route(f"{BASE}/jsonldContexts/{{context_id:path}}", delete_context, methods=["DELETE"]),
]
