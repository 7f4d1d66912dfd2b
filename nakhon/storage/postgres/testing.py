"""Helpers for tests that need a PostgreSQL database of their own.

Every test session gets a freshly created database (PostGIS installed into it on first open)
and drops it afterwards, so sessions running at the same time never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_dsn() -> str:
    """The DSN used to create test databases (``NAKHON_TEST_PG_DSN`` or the local default)."""
    return os.environ.get("NAKHON_TEST_PG_DSN", DEFAULT_ADMIN_DSN)


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointed at another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def server_available(dsn: str | None = None) -> bool:
    try:
        conn = await asyncpg.connect(dsn or admin_dsn(), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@asynccontextmanager
async def temporary_database(prefix: str = "nakhon_test") -> AsyncIterator[str]:
    """Create a uniquely named database, yield its DSN, drop it (even if connections linger)."""
    base = admin_dsn()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield with_database(base, name)
    finally:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
