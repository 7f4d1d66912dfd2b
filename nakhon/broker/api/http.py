"""HTTP edge of the NGSI-LD API: tenants, bodies, @context, content negotiation, responses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from nakhon.broker.jsonld import CORE_CONTEXT_URL, ContextResolver, TermMap
from nakhon.core.auth import Principal
from nakhon.core.errors import (
    BadRequestData,
    InvalidRequest,
    NgsiError,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
)

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
TENANT_HEADER = "ngsild-tenant"
_TENANT_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_LINK_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


@dataclass(slots=True)
class Call:
    """What every NGSI-LD handler needs to know about its request."""

    request: Request
    tenant: str
    principal: Principal
    terms: TermMap
    context_source: Any  # the @context to give back (URL, list or object)
    context_url: str | None  # the URL for a Link header, when there is one


def tenant_of(request: Request) -> str:
    """The tenant named by the NGSILD-Tenant header ('' is the default tenant)."""
    tenant = request.headers.get(TENANT_HEADER)
    if tenant is None or tenant == "":
        return ""
    if not _TENANT_RE.match(tenant):
        raise BadRequestData(
            "NGSILD-Tenant must be 1 to 64 letters, digits, '_' or '-'.", tenant=tenant
        )
    return tenant


def link_context(request: Request) -> str | None:
    """The @context URL of a JSON-LD Link header, if any."""
    header = request.headers.get("link")
    if not header:
        return None
    for match in _LINK_RE.finditer(header):
        url, params = match.group(1), match.group(2)
        if CONTEXT_REL in params:
            if not url:
                raise BadRequestData("The Link header's @context URL is empty.")
            return url
    return None


def media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


async def read_json(
    request: Request, max_bytes: int, *, merge_patch: bool = False
) -> tuple[Any, str]:
    """The request body, decoded, with its media type; 415, 413 and 400 as the spec says."""
    ctype = media_type(request.headers.get("content-type"))
    allowed = (JSON, JSON_LD, MERGE_PATCH) if merge_patch else (JSON, JSON_LD)
    if ctype not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type must be one of {', '.join(allowed)}; got {ctype or 'nothing'}."
        )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise PayloadTooLarge(f"The body is larger than {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"The body is larger than {max_bytes} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequest("The request body is empty.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}") from None
    if b"\\u0000" in raw and _has_nul(body):
        raise BadRequestData(NUL_DETAIL)
    return body, (JSON if ctype == MERGE_PATCH else ctype)


NUL_DETAIL = "The character U+0000 (NUL) is not allowed in NGSI-LD text."


def _has_nul(value: Any) -> bool:
    """U+0000 anywhere in a decoded body (keys included)? PostgreSQL cannot store it, and no
    engine should accept what another refuses."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


async def call_context(
    request: Request,
    resolver: ContextResolver,
    principal: Principal,
    body: Any = None,
    ctype: str | None = None,
) -> Call:
    """Resolve the request's @context: in the body for JSON-LD, else from the Link header."""
    tenant = tenant_of(request)
    link = link_context(request)
    source: Any
    if ctype == JSON_LD:
        items = body if isinstance(body, list) else [body]
        contexts = [i.get("@context") for i in items if isinstance(i, dict)]
        if not contexts or any(c is None for c in contexts):
            raise BadRequestData("With Content-Type application/ld+json the body needs @context.")
        if link is not None:
            raise BadRequestData("Give the @context in the body or in a Link header, not both.")
        source = contexts[0]
    else:
        if ctype == JSON and _has_context(body):
            raise BadRequestData(
                "With Content-Type application/json the @context goes in a Link header;"
                " use application/ld+json to send it in the body."
            )
        source = link
    terms = await resolver.resolve(source)
    url = source if isinstance(source, str) else None
    return Call(
        request, tenant, principal, terms, source if source is not None else CORE_CONTEXT_URL, url
    )


def _has_context(body: Any) -> bool:
    if isinstance(body, dict):
        return "@context" in body
    if isinstance(body, list):
        return any(isinstance(i, dict) and "@context" in i for i in body)
    return False


def negotiate(request: Request, *, geojson: bool = False) -> str:
    """The response media type the client accepts: JSON, JSON-LD or (where allowed) GeoJSON."""
    header = request.headers.get("accept")
    if not header:
        return JSON
    offered = [JSON, JSON_LD] + ([GEO_JSON] if geojson else [])
    best: tuple[float, int, str] | None = None
    for part in header.split(","):
        pieces = part.split(";")
        mtype = pieces[0].strip().lower()
        quality = 1.0
        for p in pieces[1:]:
            key, _, val = p.strip().partition("=")
            if key == "q":
                try:
                    quality = float(val)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        for rank, candidate in enumerate(offered):
            if mtype in (candidate, "*/*", "application/*"):
                score = (quality, -rank if mtype != candidate else 10 - rank, candidate)
                if best is None or score > best:
                    best = score
    if best is None:
        raise NotAcceptable(
            f"None of the accepted types ({header}) can be given; offered: " + ", ".join(offered)
        )
    return best[2]


def json_response(
    data: Any,
    call: Call | None,
    mtype: str = JSON,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render a body: JSON with a Link header, or JSON-LD/GeoJSON with @context inside."""
    out_headers = dict(headers or {})
    if call is not None and mtype == JSON:
        url = call.context_url or CORE_CONTEXT_URL
        out_headers["Link"] = f'<{url}>; rel="{CONTEXT_REL}"; type="{JSON_LD}"'
    elif call is not None and mtype in (JSON_LD, GEO_JSON):
        data = _with_context(data, call.context_source)
    if call is not None and call.tenant:
        out_headers["NGSILD-Tenant"] = call.tenant
    return Response(orjson.dumps(data), status, out_headers, media_type=mtype)


def _with_context(data: Any, context: Any) -> Any:
    if isinstance(data, dict):
        if data.get("type") == "FeatureCollection":
            return {**data, "@context": context}
        return {**data, "@context": context}
    if isinstance(data, list):
        return [_with_context(d, context) if isinstance(d, dict) else d for d in data]
    return data


def problem_response(error: NgsiError) -> Response:
    """ProblemDetails for an NgsiError."""
    return Response(orjson.dumps(error.problem()), error.status, media_type=JSON)


def no_content(call: Call | None = None, headers: dict[str, str] | None = None) -> Response:
    out = dict(headers or {})
    if call is not None and call.tenant:
        out["NGSILD-Tenant"] = call.tenant
    return Response(status_code=204, headers=out)


class RejectNul:
    """ASGI middleware: a percent-encoded NUL in the path or query string is a 400 up front.

    Ids, types and query parameters containing U+0000 could reach SQL, where PostgreSQL
    refuses them with an error; refusing at the edge keeps both engines alike."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = (scope.get("raw_path") or b"") + b"?" + (scope.get("query_string") or b"")
            if b"%00" in raw or b"\x00" in raw:
                response = problem_response(BadRequestData(NUL_DETAIL))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
