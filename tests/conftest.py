"""Shared fixtures: real storage engines (SQLite file, PostgreSQL) behind the real ASGI app.

Every API test runs once per engine (``engine`` parameter). Tests isolate themselves by tenant:
the ``tenant`` fixture hands each test a fresh NGSILD-Tenant, so one database per engine serves
the whole session. Set NAKHON_REQUIRE_ALL=1 (CI does) to turn a missing PostgreSQL into a
failure instead of a skip.
"""

from __future__ import annotations

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

PG_ADMIN_DSN = os.environ.get("NAKHON_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_ALL = os.environ.get("NAKHON_REQUIRE_ALL") == "1"
ENGINES = ["sqlite", "postgres"]


async def _pg_available() -> bool:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
async def pg_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (with PostGIS) for this test session, dropped afterwards."""
    if not await _pg_available():
        if REQUIRE_ALL:
            pytest.fail("PostgreSQL is required (NAKHON_REQUIRE_ALL=1) but not reachable")
        pytest.skip("PostgreSQL not reachable")
    name = f"nakhon_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    try:
        yield dsn
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


class Api:
    """An httpx client on the in-process app, plus what tests need to know about it."""

    def __init__(self, client: httpx.AsyncClient, engine: str, admin_token: str | None) -> None:
        self.client = client
        self.engine = engine
        self.admin_token = admin_token

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


async def _app_client(url: str, data_dir: Path, auth: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        env={}, database_url=url, data_dir=data_dir, auth=auth, max_body_bytes=262144
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://nakhon.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture(scope="session", params=ENGINES)
async def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """The app on one engine with authentication OFF (the conformance set-up)."""
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'nakhon.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    async for client in _app_client(url, data_dir, "off"):
        yield Api(client, request.param, None)


@pytest.fixture(scope="session", params=ENGINES)
async def secured_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """The app on one engine with authentication ON and the bootstrap admin token."""
    data_dir = tmp_path_factory.mktemp(f"secure-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'nakhon.db'}"
    else:
        # A database of its own, so its credentials don't mix with the open app's.
        base = request.getfixturevalue("pg_database")
        url = base
    async for client in _app_client(url, data_dir, "on"):
        token_file = data_dir / "admin-token"
        token = token_file.read_text().strip() if token_file.exists() else None
        yield Api(client, request.param, token)


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
