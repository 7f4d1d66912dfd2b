"""Versioned schema migrations for the PostgreSQL engine.

Migrations are the numbered ``NNNN_name.sql`` files next to this module, applied in order, each
in its own transaction together with its row in ``schema_migrations``. A database-wide advisory
lock serialises processes that start at the same moment, so two workers never apply the same
file twice or race on ``CREATE EXTENSION``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

# Arbitrary constant ("nakhon" in ASCII). Database-wide rather than per schema on purpose:
# CREATE EXTENSION is database-wide too, and migrations are rare enough that serialising them
# across schemas costs nothing.
_LOCK_KEY = 0x6E616B686F6E

_FILE_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The migration files shipped with the package, in version order."""
    found: list[Migration] = []
    for item in resources.files(__package__).iterdir():
        match = _FILE_RE.match(item.name)
        if match:
            found.append(Migration(int(match.group(1)), item.name, item.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def quote_ident(name: str) -> str:
    """SQL identifier quoting (schema names come from configuration, never from requests)."""
    return '"' + name.replace('"', '""') + '"'


async def postgis_schema(conn: asyncpg.Connection) -> str:
    """Create PostGIS if missing and return the schema it lives in.

    The extension is created in ``public`` (never in an engine's own schema) so that dropping
    one engine's schema can never drop PostGIS from under the others.
    """
    found = await conn.fetchval(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'postgis'"
    )
    if found is None:
        await conn.execute("CREATE SCHEMA IF NOT EXISTS public")
        await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public")
        found = "public"
    return str(found)


async def migrate(
    conn: asyncpg.Connection, schema: str | None, *, upto: int | None = None
) -> tuple[str, list[int]]:
    """Bring the database (or ``schema``) up to date (``upto``: only up to that version, for
    tests of a migration on a database built by the ones before it).

    Returns the ``search_path`` the engine's connections must use and the versions applied now.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        geo_schema = await postgis_schema(conn)
        target = schema or geo_schema
        if schema is not None:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        path_parts = [target] if target == geo_schema else [target, geo_schema]
        search_path = ", ".join(quote_ident(p) for p in path_parts)
        await conn.execute(f"SET search_path TO {search_path}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied: list[int] = []
        for mig in migrations():
            if mig.version in done or (upto is not None and mig.version > upto):
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    mig.version,
                    mig.name,
                )
            applied.append(mig.version)
        return search_path, applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
