"""SQLite schema, as numbered migrations applied in order at open."""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: entities, spatial index, small documents, tenants, attribute history.
    """
    CREATE TABLE entities (
        pk INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        type TEXT NOT NULL,
        types TEXT NOT NULL,
        scopes TEXT,
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL,
        doc TEXT NOT NULL,
        UNIQUE (tenant, id)
    );
    CREATE INDEX entities_by_type ON entities (tenant, type, id);
    CREATE TABLE entity_types (
        tenant TEXT NOT NULL,
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        entity_pk INTEGER NOT NULL,
        PRIMARY KEY (tenant, type, id)
    ) WITHOUT ROWID;
    CREATE INDEX entity_types_by_entity ON entity_types (entity_pk);
    CREATE TABLE geo (
        gid INTEGER PRIMARY KEY,
        entity_pk INTEGER NOT NULL,
        attr TEXT NOT NULL,
        geojson TEXT NOT NULL
    );
    CREATE INDEX geo_by_entity ON geo (entity_pk);
    CREATE VIRTUAL TABLE geo_rtree USING rtree (gid, minx, maxx, miny, maxy);
    CREATE TABLE kv (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    CREATE TABLE tenants (name TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE attr_history (
        hid INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        attr TEXT NOT NULL,
        dataset_id TEXT,
        observed_at TEXT,
        modified_at TEXT NOT NULL,
        instance TEXT NOT NULL
    );
    CREATE INDEX attr_history_by_attr
        ON attr_history (tenant, entity_id, attr, observed_at);
    """,
)


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations this database has not seen, each in its own transaction."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    done = row[0] or 0
    for version, script in enumerate(MIGRATIONS, start=1):
        if version <= done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
