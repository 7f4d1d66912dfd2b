"""/entityOperations routes: batch create, upsert, update, merge, delete, and query."""

from __future__ import annotations

from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nakhon.broker import validate
from nakhon.broker.api import params as p
from nakhon.broker.api.entities import BASE, check_uri, page_response
from nakhon.broker.api.http import JSON, Call, json_response, negotiate, no_content, read_json
from nakhon.broker.api.state import state
from nakhon.broker.model import Entity
from nakhon.broker.service import BatchResult
from nakhon.core.errors import BadRequestData, InternalError, NgsiError

BatchKind = Literal["create", "upsert", "update", "merge", "delete"]


def _items(body: Any, call: Call, kind: BatchKind) -> list[Entity | str | NgsiError]:
    if not isinstance(body, list):
        raise BadRequestData("A batch body must be a JSON array.")
    if not body:
        raise BadRequestData("A batch body must not be empty.")
    items: list[Entity | str | NgsiError] = []
    for raw in body:
        try:
            if kind == "delete":
                if not isinstance(raw, str):
                    raise BadRequestData("A batch delete body is an array of entity ids.")
                items.append(check_uri(raw))
                continue
            entity = validate.parse_entity(
                raw, call.terms.expand, require_type=kind != "merge" and kind != "update"
            )
            check_uri(entity.id)
            items.append(entity)
        except NgsiError as exc:
            if "entityId" not in exc.extra:
                eid = raw.get("id") if isinstance(raw, dict) else raw
                exc.extra["entityId"] = eid if isinstance(eid, str) else ""
            items.append(exc)
    return items


def _problem(error: Exception) -> dict[str, Any]:
    if isinstance(error, NgsiError):
        problem = error.problem()
        problem.pop("entityId", None)
        return problem
    return InternalError(str(error)).problem()


def _answer(kind: BatchKind, result: BatchResult, call: Call) -> Response:
    errors = result.errors
    successes = result.successes
    if not errors:
        if kind == "create":
            return json_response([eid for eid, _ in successes], None, JSON, status=201)
        if kind == "upsert":
            created = [eid for eid, o in successes if o.created]
            if len(created) == len(successes):
                return json_response(created, None, JSON, status=201)
            if not created:
                return no_content(call)
        else:
            return no_content(call)
    body = {
        "success": [eid for eid, _ in successes],
        "errors": [{"entityId": eid, "error": _problem(err)} for eid, err in errors],
    }
    return json_response(body, None, JSON, status=207)


def _batch(kind: BatchKind) -> Any:
    async def handler(request: Request) -> Response:
        st = state(request)
        principal = await st.access.authenticate(request.headers)
        body, ctype = await read_json(request, st.settings.max_body_bytes)
        call = await st.call(
            request,
            principal,
            body if kind != "delete" else None,
            ctype if kind != "delete" else None,
        )
        opts = p.options_of(request.query_params)
        if "replace" in opts and "update" in opts:
            raise BadRequestData("options=replace and options=update exclude each other.")
        result = await st.broker.batch(
            call.principal,
            call.tenant,
            kind,
            _items(body, call, kind),
            upsert_mode="update" if "update" in opts else "replace",
            no_overwrite="noOverwrite" in opts,
        )
        return _answer(kind, result, call)

    handler.__name__ = f"batch_{kind}"
    return handler


async def query_post(request: Request) -> Response:
    st = state(request)
    mtype = negotiate(request, geojson=True)
    principal = await st.access.authenticate(request.headers)
    body, ctype = await read_json(request, st.settings.max_body_bytes)
    call = await st.call(request, principal, body, ctype)
    query, merged = p.query_from_body(
        body, request.query_params, call.terms, default_limit=st.settings.default_limit
    )
    opts = p.render_options(merged, call.terms)
    page = await st.broker.query_entities(call.principal, call.tenant, query)
    return page_response(page, query, opts, call, mtype)


routes = [
    Route(f"{BASE}/entityOperations/{kind}", _batch(kind), methods=["POST"])
    for kind in ("create", "upsert", "update", "merge", "delete")
] + [Route(f"{BASE}/entityOperations/query", query_post, methods=["POST"])]
