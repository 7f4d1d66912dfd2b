"""Shared fixtures: real storage engines (SQLite file, PostgreSQL) behind the real ASGI app.

Every API test runs once per engine (``engine`` parameter). Tests isolate themselves by tenant:
the ``tenant`` fixture hands each test a fresh NGSILD-Tenant, so one database per engine serves
the whole session. Set NAKHON_REQUIRE_ALL=1 (CI does) to turn a missing PostgreSQL into a
failure instead of a skip.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from nakhon.app import create_app
from nakhon.config import load_settings
from nakhon.storage.postgres.testing import admin_dsn, server_available, with_database

PG_ADMIN_DSN = admin_dsn()
REQUIRE_ALL = os.environ.get("NAKHON_REQUIRE_ALL") == "1"
ENGINES = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (PostGIS is added on first open) for this session."""
    yield from _fresh_pg_database()


@pytest.fixture(scope="session")
def pg_database_2() -> Iterator[str]:
    """A second database, for an app that must not share the first one's background workers
    (two apps on one database would both deliver every notification)."""
    yield from _fresh_pg_database()


@pytest.fixture(scope="session")
def pg_database_3() -> Iterator[str]:
    """A third database, for tests that run several apps on one database."""
    yield from _fresh_pg_database()


def _fresh_pg_database() -> Iterator[str]:
    if not asyncio.run(server_available(PG_ADMIN_DSN)):
        if REQUIRE_ALL:
            pytest.fail("PostgreSQL is required (NAKHON_REQUIRE_ALL=1) but not reachable")
        pytest.skip("PostgreSQL not reachable")
    name = f"nakhon_api_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(PG_ADMIN_DSN, name)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=ENGINES)
def engine_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database URL of one engine: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'nakhon.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


class Api:
    """An httpx client on the in-process app, plus what tests need to know about it."""

    def __init__(self, client: httpx.AsyncClient, engine: str, admin_token: str | None) -> None:
        self.client = client
        self.engine = engine
        self.admin_token = admin_token

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


async def _app_client(
    url: str, data_dir: Path, auth: str, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on ``url`` in this process (lifespan run), as an httpx client; ``overrides``
    are further settings (e.g. ``notify_mode``)."""
    settings = load_settings(
        env={}, database_url=url, data_dir=data_dir, auth=auth, max_body_bytes=262144,
        **overrides,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://nakhon.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture(scope="session")
async def api(engine_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """The app on one engine with authentication OFF (the conformance set-up)."""
    engine = engine_url.split(":", 1)[0].replace("postgresql", "postgres")
    data_dir = tmp_path_factory.mktemp(f"data-{engine}")
    async for client in _app_client(engine_url, data_dir, "off"):
        yield Api(client, engine, None)


@pytest.fixture(scope="session")
def secured_url(
    engine_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> str:
    """The secured app's database: its own SQLite file, or a second PostgreSQL database."""
    if engine_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path_factory.mktemp('secure-sqlite') / 'nakhon.db'}"
    url: str = request.getfixturevalue("pg_database_2")
    return url


@pytest.fixture(scope="session")
async def secured_api(
    engine_url: str, secured_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """The app on one engine with authentication ON and the bootstrap admin token.

    It has a database of its own: two apps on one database would both run background
    workers (notification delivery) for the same rows."""
    engine = engine_url.split(":", 1)[0].replace("postgresql", "postgres")
    data_dir = tmp_path_factory.mktemp(f"secure-{engine}")
    async for client in _app_client(secured_url, data_dir, "on"):
        token_file = data_dir / "admin-token"
        token = token_file.read_text().strip() if token_file.exists() else None
        yield Api(client, engine, token)


@pytest.fixture
def tenant() -> str:
    """A fresh tenant per test: tests never see each other's entities."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def headers(tenant: str) -> dict[str, str]:
    return {"NGSILD-Tenant": tenant, "Content-Type": "application/json"}


SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():
    SHARED = Path("/work/shared")


@pytest.fixture(scope="session")
def shared_dir() -> Iterator[Path]:
    yield SHARED


_SERVICE_SKIP = ("postgres", "mosquitto", "mqtt", "chromium", "browser", "not reachable",
                 "not running")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With NAKHON_REQUIRE_ALL=1 (CI), a test skipped for a missing service fails instead."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_ALL and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).lower()
        if any(word in reason for word in _SERVICE_SKIP):
            report.outcome = "failed"
            report.longrepr = f"required service missing (NAKHON_REQUIRE_ALL=1): {reason}"
