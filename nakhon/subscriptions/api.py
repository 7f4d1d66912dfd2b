"""/ngsi-ld/v1/subscriptions routes (ETSI GS CIM 009 V1.8.1, 6.10 and 6.11)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nakhon.broker.api import params as p
from nakhon.broker.api.http import (
    json_response,
    link_context,
    negotiate,
    no_content,
    read_json,
)
from nakhon.broker.api.state import state
from nakhon.storage.rows import utc_now
from nakhon.subscriptions.model import check_uri
from nakhon.subscriptions.service import SubscriptionService
from nakhon.subscriptions.view import render_subscription

BASE = "/ngsi-ld/v1/subscriptions"


def service(request: Request) -> SubscriptionService:
    svc: SubscriptionService = request.app.state.subscriptions
    return svc


def _sub_id(request: Request) -> str:
    return check_uri(request.path_params["subscription_id"], "Subscription id")


async def create_subscription(request: Request) -> Response:
    st = state(request)
    principal = await st.access.authenticate(request.headers)
    body, ctype = await read_json(request, st.settings.max_body_bytes)
    call = await st.call(request, principal, body, ctype)
    sub_id = await service(request).create(
        call.principal, call.tenant, body, call.terms, call.context_source
    )
    headers = {"Location": f"{BASE}/{sub_id}"}
    if call.tenant:
        headers["NGSILD-Tenant"] = call.tenant
    return Response(status_code=201, headers=headers)


async def query_subscriptions(request: Request) -> Response:
    st = state(request)
    mtype = negotiate(request)
    principal = await st.access.authenticate(request.headers)
    call = await st.call(request, principal)
    params = request.query_params
    opts = p.options_of(params)
    limit = p.int_param(params, "limit", st.settings.default_limit)
    offset = p.int_param(params, "offset", 0)
    page, count = await service(request).query(
        call.principal, call.tenant, limit=limit, offset=offset
    )
    now = utc_now()
    data = [
        render_subscription(e, s, call.terms.compact, now, sys_attrs="sysAttrs" in opts)
        for e, s in page
    ]
    headers = {}
    if p.bool_param(params, "count"):
        headers["NGSILD-Results-Count"] = str(count)
    return json_response(data, call, mtype, headers=headers)


async def retrieve_subscription(request: Request) -> Response:
    st = state(request)
    mtype = negotiate(request)
    principal = await st.access.authenticate(request.headers)
    call = await st.call(request, principal)
    opts = p.options_of(request.query_params)
    entry, stats = await service(request).retrieve(call.principal, call.tenant, _sub_id(request))
    data = render_subscription(
        entry, stats, call.terms.compact, utc_now(), sys_attrs="sysAttrs" in opts
    )
    return json_response(data, call, mtype)


async def update_subscription(request: Request) -> Response:
    st = state(request)
    principal = await st.access.authenticate(request.headers)
    sub_id = _sub_id(request)
    body, ctype = await read_json(request, st.settings.max_body_bytes, merge_patch=True)
    call = await st.call(request, principal, body, ctype)
    # Only a @context the client actually sent replaces the subscription's own.
    given = ctype == "application/ld+json" or link_context(request) is not None
    await service(request).update(
        call.principal,
        call.tenant,
        sub_id,
        body,
        call.terms if given else None,
        call.context_source if given else None,
    )
    return no_content(call)


async def delete_subscription(request: Request) -> Response:
    st = state(request)
    principal = await st.access.authenticate(request.headers)
    call = await st.call(request, principal)
    await service(request).delete(call.principal, call.tenant, _sub_id(request))
    return no_content(call)


routes = [
    Route(BASE, create_subscription, methods=["POST"]),
    Route(BASE, query_subscriptions, methods=["GET"]),
    Route(BASE + "/{subscription_id:path}", retrieve_subscription, methods=["GET"]),
    Route(BASE + "/{subscription_id:path}", update_subscription, methods=["PATCH"]),
    Route(BASE + "/{subscription_id:path}", delete_subscription, methods=["DELETE"]),
]
