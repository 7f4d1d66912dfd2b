"""Storage fixtures. ``storage``: every contract test runs against every engine — a fresh
SQLite file, or a fresh schema in this session's own PostgreSQL database. ``pg_dsn`` and
``schema``: that database and a fresh schema in it (dropped after the test), for the
PostgreSQL-only tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nakhon.storage.base import Storage


def _sqlite_class() -> Any:
    try:
        from nakhon.storage import sqlite
    except ImportError:
        return None
    return getattr(sqlite, "SqliteStorage", None)


@pytest.fixture(scope="session")
async def pg_session_dsn() -> AsyncIterator[str | None]:
    """A database of this test session's own, dropped at the end (None: no server)."""
    from nakhon.storage.postgres.testing import server_available, temporary_database

    if not await server_available():
        yield None
        return
    async with temporary_database("nakhon_contract") as dsn:
        yield dsn


@pytest.fixture
def pg_dsn(pg_session_dsn: str | None) -> str:
    """This session's PostgreSQL database (the test is skipped without a server)."""
    if pg_session_dsn is None:
        pytest.skip("PostgreSQL is not reachable")
    return pg_session_dsn


@pytest.fixture
async def schema(pg_dsn: str) -> AsyncIterator[str]:
    """A fresh schema name in :func:`pg_dsn`, dropped after the test."""
    from nakhon.storage.postgres.testing import drop_schema

    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    await drop_schema(pg_dsn, name)


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, pg_session_dsn: str | None
) -> AsyncIterator[Storage]:
    store: Any
    if request.param == "sqlite":
        cls = _sqlite_class()
        if cls is None:
            pytest.skip("nakhon.storage.sqlite has no SqliteStorage yet")
        store = cls(str(tmp_path / "contract.db"))
        await store.open()
        try:
            yield store
        finally:
            await store.close()
        return
    from nakhon.storage.postgres import PostgresStorage
    from nakhon.storage.postgres.testing import drop_schema

    dsn = pg_session_dsn
    if dsn is None:
        pytest.skip("PostgreSQL is not reachable")
    schema = f"contract_{uuid.uuid4().hex[:10]}"
    store = PostgresStorage(dsn, schema=schema)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        await drop_schema(dsn, schema)
