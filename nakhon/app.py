"""create_app(): the ASGI application with every capability mounted."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nakhon import admin_api
from nakhon.broker.api import batch, contexts_api, discovery, entities
from nakhon.broker.api.http import RejectNul, problem_response
from nakhon.broker.api.state import ApiState
from nakhon.broker.jsonld import ContextResolver, KvContextStore
from nakhon.broker.service import Broker
from nakhon.config import Settings, load_settings
from nakhon.core.auth import SYSTEM, Access
from nakhon.core.errors import (
    BadRequestData,
    InternalError,
    InvalidRequest,
    NgsiError,
    OperationNotSupported,
    ResourceNotFound,
)
from nakhon.core.logs import get_logger
from nakhon.domains import api as domains_api
from nakhon.domains.alert_feed import AlertFeed
from nakhon.domains.monitor import AlertMonitor
from nakhon.iot import api as iot_api
from nakhon.iot.runtime import IotRuntime
from nakhon.kpi import api as kpi_api
from nakhon.kpi.task import KpiMonitor
from nakhon.storage import storage_for
from nakhon.subscriptions import api as subscriptions_api
from nakhon.subscriptions.notifier import NotifierChild
from nakhon.subscriptions.service import SubscriptionService
from nakhon.temporal import api as temporal_api
from nakhon.temporal.retention import parse_rules
from nakhon.temporal.retention_task import RetentionTask

log = get_logger("nakhon.app")
ADMIN_TOKEN_FILE = "admin-token"
# NAKHON_NOTIFY_MODE → the subscription service's role in this process
_ROLES = {"inline": "inline", "process": "writer", "external": "writer"}


async def _ngsi_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NgsiError)
    return problem_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: NgsiError
    if exc.status_code == 404:
        error = ResourceNotFound(f"No resource at {request.url.path}.")
    elif exc.status_code == 405:
        error = OperationNotSupported(f"{request.method} is not supported on {request.url.path}.")
        response = problem_response(error)
        response.status_code = 405
        return response
    elif exc.status_code < 500:
        error = InvalidRequest(str(exc.detail))
    else:
        error = InternalError(str(exc.detail))
    response = problem_response(error)
    response.status_code = exc.status_code
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, (UnicodeDecodeError, ValueError)) and not isinstance(exc, NgsiError):
        # Undecodable query strings and the like are the client's mistake.
        return problem_response(BadRequestData(f"Malformed request: {exc}"))
    log.exception("unhandled error", path=request.url.path, method=request.method)
    return problem_response(InternalError("An internal error occurred; it has been logged."))


def _write_private(path: Path, text: str) -> None:
    """Write a secret readable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


async def bootstrap_admin(access: Access, data_dir: Path) -> Path | None:
    """First start with authentication on: create an admin credential and say where it is."""
    if not access.enabled or await access.has_admin():
        return None
    token = await access.create_credential(SYSTEM, "first-admin", "admin", None)
    path = data_dir / ADMIN_TOKEN_FILE
    _write_private(path, token + "\n")
    log.warning(
        "first admin credential created",
        file=str(path),
        hint="send it as 'Authorization: Bearer <token>'; create more with "
        "POST /nakhon/v1/admin/credentials or `nakhon credentials create`",
    )
    return path


def create_app(settings: Settings | None = None) -> Starlette:
    """The Nakhon ASGI app. Storage opens and closes with the app's lifespan."""
    settings = settings or load_settings()
    storage = storage_for(settings.resolved_database_url, write_batch_max=settings.write_batch_max)
    access = Access(storage, enabled=settings.auth_enabled, anonymous_read=settings.anonymous_read)
    resolver = ContextResolver(
        timeout=settings.context_fetch_timeout,
        max_bytes=settings.context_max_bytes,
        ttl=settings.context_cache_ttl,
        store=KvContextStore(storage),
        allow_private=settings.context_fetch_private,
    )
    broker = Broker(storage, access, max_limit=settings.max_limit)
    api = ApiState(settings, broker, access, resolver)
    subscriptions = SubscriptionService(storage, access, resolver, max_limit=settings.max_limit,
                                        max_delay=settings.notification_max_delay,
                                        max_entities=settings.notification_max_entities,
                                        role=_ROLES[settings.notify_mode])
    notifier = NotifierChild(settings) if settings.notify_mode == "process" else None
    alert_monitor = AlertMonitor(broker)  # absence-of-data alert sweeps
    alert_feed = AlertFeed(broker)  # threshold/rate rules on every committed change
    retention = RetentionTask(
        storage,
        access,
        parse_rules(settings.temporal_retention) if settings.temporal_retention else [],
        settings.temporal_prune_interval,
    )
    iot = IotRuntime(settings, storage, access, broker)
    kpi_monitor = KpiMonitor(
        broker,
        interval_minutes=settings.kpi_interval,
        late_days=settings.kpi_late_days,
        tenants=settings.kpi_tenants,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await storage.open()
        if not settings.auth_enabled:
            log.warning(
                "AUTHENTICATION IS OFF (NAKHON_AUTH=off): anyone who reaches this server can "
                "read and write every tenant. Use only on closed networks or for conformance tests."
            )
        await bootstrap_admin(access, Path(settings.data_dir))
        await subscriptions.open()  # outbox hook + dispatcher, before anything else writes
        if notifier is not None:
            await notifier.start()  # `nakhon notify`, delivering on the other core
        alert_feed.start()  # before ingest starts writing
        await iot.start()  # MQTT only when NAKHON_MQTT_URL is set
        alert_monitor.start()
        kpi_monitor.start()  # periodic, incremental KPI recomputation
        retention.start()  # history retention sweeps, when rules are configured
        try:
            yield
        finally:
            await retention.stop()
            await kpi_monitor.stop()
            await alert_monitor.stop()
            await iot.stop()
            await alert_feed.stop()
            if notifier is not None:
                await notifier.stop()
            await subscriptions.close()
            await resolver.aclose()
            await storage.close()

    async def health(request: Request) -> Response:
        return Response('{"status":"ok"}', media_type="application/json")

    routes = [
        Route("/health", health, methods=["GET"]),
        *entities.routes,
        *batch.routes,
        *discovery.routes,
        *contexts_api.routes,
        *admin_api.routes,
        *temporal_api.routes,
        *subscriptions_api.routes,
        *domains_api.routes,
        *iot_api.routes,
        *kpi_api.routes,
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RejectNul)],
        lifespan=lifespan,
        exception_handlers={
            NgsiError: _ngsi_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.retention = retention
    app.state.alert_feed = alert_feed
    app.state.api = api
    app.state.storage = storage
    app.state.settings = settings
    app.state.subscriptions = subscriptions
    app.state.notifier = notifier
    app.state.iot = iot
    return app
