"""HTTP edge of the KPI engine: ``/nakhon/v1/kpis``.

The tenant is the ``NGSILD-Tenant`` header; reads follow the tenant's read rule, the
recompute trigger needs a write credential. Handlers only parse, call the service and render.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nakhon.broker.api.http import json_response, tenant_of
from nakhon.broker.api.state import state
from nakhon.core.errors import BadRequestData
from nakhon.kpi import service

BASE = "/nakhon/v1/kpis"
MAX_HISTORY = 400


def _headers(tenant: str) -> dict[str, str]:
    return {"NGSILD-Tenant": tenant} if tenant else {}


def _int_param(request: Request, name: str, default: int, top: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 0 < int(raw) <= top:
        raise BadRequestData(f"{name} must be a whole number from 1 to {top}; got {raw!r}.")
    return int(raw)


async def list_kpis(request: Request) -> Response:
    st = state(request)
    principal, tenant = await st.access.authenticate(request.headers), tenant_of(request)
    docs = await service.list_kpis(
        st.broker,
        principal,
        tenant,
        domain=request.query_params.get("domain"),
        lang=request.query_params.get("lang"),
    )
    return json_response(docs, None, headers=_headers(tenant))


async def get_kpi(request: Request) -> Response:
    st = state(request)
    principal, tenant = await st.access.authenticate(request.headers), tenant_of(request)
    doc = await service.get_kpi(
        st.broker,
        principal,
        tenant,
        request.path_params["kpi_id"],
        lang=request.query_params.get("lang"),
        history=_int_param(request, "history", 31, MAX_HISTORY),
    )
    return json_response(doc, None, headers=_headers(tenant))


async def recompute(request: Request) -> Response:
    st = state(request)
    principal, tenant = await st.access.authenticate(request.headers), tenant_of(request)
    full = request.query_params.get("full", "false").lower() in ("1", "true", "yes")
    result = await service.recompute(
        st.broker, principal, tenant, full=full, late_days=st.settings.kpi_late_days
    )
    return json_response(
        {
            "from": result.first.isoformat() if result.first else None,
            "to": result.last.isoformat(),
            "daysRebuilt": result.days_rebuilt,
            "periodsWritten": result.periods_written,
            "seconds": {k: round(v, 4) for k, v in result.seconds.items()},
        },
        None,
        headers=_headers(tenant),
    )


routes = [
    Route(BASE, list_kpis, methods=["GET"]),
    Route(f"{BASE}/recompute", recompute, methods=["POST"]),
    Route(f"{BASE}/{{kpi_id}}", get_kpi, methods=["GET"]),
]
