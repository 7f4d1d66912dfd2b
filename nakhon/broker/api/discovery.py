"""Discovery routes: /types and /attributes (clause 5.7.5–5.7.8)."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nakhon.broker.api import params as p
from nakhon.broker.api.entities import BASE, read_call
from nakhon.broker.api.http import json_response, negotiate
from nakhon.broker.api.state import state
from nakhon.core.errors import ResourceNotFound


def _list_id(kind: str) -> str:
    return f"urn:ngsi-ld:{kind}:{uuid.uuid4().hex}"


async def list_types(request: Request) -> Response:
    st = state(request)
    mtype = negotiate(request)
    call = await read_call(request, st)
    infos = await st.broker.list_types(call.principal, call.tenant)
    compact = call.terms.compact
    if p.bool_param(request.query_params, "details"):
        data: object = [
            {
                "id": info.type,
                "type": "EntityType",
                "typeName": compact(info.type),
                "attributeNames": [compact(a) for a in info.attributes],
            }
            for info in infos
        ]
    else:
        data = {
            "id": _list_id("EntityTypeList"),
            "type": "EntityTypeList",
            "typeList": [compact(i.type) for i in infos],
        }
    return json_response(data, call, mtype)


async def type_info(request: Request) -> Response:
    st = state(request)
    mtype = negotiate(request)
    call = await read_call(request, st)
    wanted = call.terms.expand(request.path_params["type"])
    infos = {i.type: i for i in await st.broker.list_types(call.principal, call.tenant)}
    info = infos.get(wanted)
    if info is None:
        raise ResourceNotFound(f"No entity of type {request.path_params['type']!r}.")
    attributes = {a.name: a for a in await st.broker.list_attributes(call.principal, call.tenant)}
    compact = call.terms.compact
    data = {
        "id": info.type,
        "type": "EntityTypeInfo",
        "typeName": compact(info.type),
        "entityCount": info.count,
        "attributeDetails": [
            {
                "id": name,
                "type": "Attribute",
                "attributeName": compact(name),
                "attributeTypes": attributes[name].attribute_types if name in attributes else [],
            }
            for name in info.attributes
        ],
    }
    return json_response(data, call, mtype)


async def list_attributes(request: Request) -> Response:
    st = state(request)
    mtype = negotiate(request)
    call = await read_call(request, st)
    infos = await st.broker.list_attributes(call.principal, call.tenant)
    compact = call.terms.compact
    if p.bool_param(request.query_params, "details"):
        data: object = [_attribute(info, compact) for info in infos]
    else:
        data = {
            "id": _list_id("AttributeList"),
            "type": "AttributeList",
            "attributeList": [compact(i.name) for i in infos],
        }
    return json_response(data, call, mtype)


def _attribute(info: object, compact: object) -> dict[str, object]:
    from nakhon.storage.base import AttributeInfo

    assert isinstance(info, AttributeInfo) and callable(compact)
    return {
        "id": info.name,
        "type": "Attribute",
        "attributeName": compact(info.name),
        "attributeCount": info.count,
        "attributeTypes": info.attribute_types,
        "typeNames": [compact(t) for t in info.types],
    }


async def attribute_info(request: Request) -> Response:
    st = state(request)
    mtype = negotiate(request)
    call = await read_call(request, st)
    wanted = call.terms.expand(request.path_params["attr"])
    for info in await st.broker.list_attributes(call.principal, call.tenant):
        if info.name == wanted:
            return json_response(_attribute(info, call.terms.compact), call, mtype)
    raise ResourceNotFound(f"No attribute {request.path_params['attr']!r}.")


routes = [
    Route(f"{BASE}/types", list_types, methods=["GET"]),
    Route(f"{BASE}/types/{{type}}", type_info, methods=["GET"]),
    Route(f"{BASE}/attributes", list_attributes, methods=["GET"]),
    Route(f"{BASE}/attributes/{{attr}}", attribute_info, methods=["GET"]),
]
