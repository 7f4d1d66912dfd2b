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
        qv TEXT NOT NULL,
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
    # 2: subscriptions and their durable notification outbox (nakhon.subscriptions).
    """
    CREATE TABLE subscriptions (
        pk INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        doc TEXT NOT NULL,
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL,
        times_sent INTEGER NOT NULL DEFAULT 0,
        times_failed INTEGER NOT NULL DEFAULT 0,
        last_notification TEXT,
        last_success TEXT,
        last_failure TEXT,
        UNIQUE (tenant, id)
    );
    CREATE TABLE notification_outbox (
        seq INTEGER PRIMARY KEY,
        sub_pk INTEGER NOT NULL,
        payload BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX notification_outbox_by_sub ON notification_outbox (sub_pk, seq);
    """,
    # 3: temporal queries (nakhon.temporal). Two generated columns derived from what the writer
    # already stores, so the write path is unchanged: ts_ms, the effective observation time
    # (observedAt, else modification time) as integer epoch milliseconds — exact, and the same
    # value for the same instant whatever the offset it was written with — and num, the value
    # when it is a JSON number. The index covers the temporal read and aggregation path; it
    # replaces the observed_at index, which a coalesced time could not use.
    """
    ALTER TABLE attr_history ADD COLUMN ts_ms INTEGER GENERATED ALWAYS AS (
        CAST(round((julianday(coalesce(observed_at, modified_at)) - 2440587.5) * 86400000.0)
             AS INTEGER)) VIRTUAL;
    ALTER TABLE attr_history ADD COLUMN num REAL GENERATED ALWAYS AS (
        CASE json_type(instance, '$.value')
            WHEN 'integer' THEN json_extract(instance, '$.value')
            WHEN 'real' THEN json_extract(instance, '$.value') END) VIRTUAL;
    DROP INDEX attr_history_by_attr;
    CREATE INDEX attr_history_by_time
        ON attr_history (tenant, entity_id, attr, ts_ms, num, dataset_id);
    """,
    # 4: notification outbox as one row per change fanned out to its subscriptions (``subs``:
    # ",pk,pk,"), read per subscription from a cursor (subscriptions.delivered_seq). One row
    # per change instead of one per (subscription, change) keeps the write hook cheap.
    """
    DROP TABLE notification_outbox;
    CREATE TABLE notification_outbox (
        seq INTEGER PRIMARY KEY,
        subs TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    ALTER TABLE subscriptions ADD COLUMN delivered_seq INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: deletions in temporal history (nakhon.storage.history_base). ``deleted`` tells the
    # deletion markers (instances with deletedAt) from the rest, inside the covering index, so
    # aggregation leaves them out without reading the instance; the partial index finds the
    # entity markers of a tenant (deleted entities) without scanning its history.
    """
    ALTER TABLE attr_history ADD COLUMN deleted INTEGER GENERATED ALWAYS AS (
        json_type(instance, '$.deletedAt') IS NOT NULL) VIRTUAL;
    DROP INDEX attr_history_by_time;
    CREATE INDEX attr_history_by_time
        ON attr_history (tenant, entity_id, attr, ts_ms, num, dataset_id, deleted);
    CREATE INDEX attr_history_entity_marks
        ON attr_history (tenant, entity_id, ts_ms) WHERE attr = '@entity';
    """,
    # 6: history keyed by series (nakhon.storage.sqlite.series). Rows carry an integer sid
    # instead of repeating (tenant, entity id, attribute IRI) in the table and its index, and
    # the derived columns become ordinary ones written by the writer (no JSON parsed per
    # insert): raw inserts ~1.8× faster, the file ~45 % smaller. hid values are kept (they are
    # the instanceIds clients hold). Entity markers are series of their own (attr '@entity'),
    # found through history_series_by_attr, so their partial index goes. ``txt`` holds a
    # short string value (``series.TXT_MAX``) in the index, so state durations (parking
    # status, …) are index-only too instead of reading each row's instance.
    """
    CREATE TABLE history_series (
        sid INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        attr TEXT NOT NULL,
        UNIQUE (tenant, entity_id, attr)
    );
    CREATE INDEX history_series_by_attr ON history_series (tenant, attr, entity_id);
    INSERT INTO history_series (tenant, entity_id, attr)
        SELECT DISTINCT tenant, entity_id, attr FROM attr_history ORDER BY 1, 2, 3;
    CREATE TABLE attr_history_v6 (
        hid INTEGER PRIMARY KEY,
        sid INTEGER NOT NULL,
        dataset_id TEXT,
        observed_at TEXT,
        modified_at TEXT NOT NULL,
        instance TEXT NOT NULL,
        ts_ms INTEGER,
        num REAL,
        deleted INTEGER NOT NULL DEFAULT 0,
        txt TEXT
    );
    INSERT INTO attr_history_v6
        SELECT h.hid, s.sid, h.dataset_id, h.observed_at, h.modified_at, h.instance, h.ts_ms,
               h.num, h.deleted,
               CASE WHEN json_type(h.instance, '$.value') = 'text'
                    AND length(json_extract(h.instance, '$.value')) <= 64
                    THEN json_extract(h.instance, '$.value') END
        FROM attr_history h JOIN history_series s
          ON s.tenant = h.tenant AND s.entity_id = h.entity_id AND s.attr = h.attr
        ORDER BY h.hid;
    DROP TABLE attr_history;
    ALTER TABLE attr_history_v6 RENAME TO attr_history;
    CREATE INDEX attr_history_by_time
        ON attr_history (sid, ts_ms, num, dataset_id, deleted, txt);
    CREATE VIEW history_keyed AS
        SELECT h.hid, h.sid, s.tenant, s.entity_id, s.attr, h.dataset_id, h.observed_at,
               h.modified_at, h.instance, h.ts_ms, h.num, h.deleted, h.txt
        FROM attr_history h JOIN history_series s ON s.sid = h.sid;
    """,
)


def migrate(conn: sqlite3.Connection, upto: int | None = None) -> None:
    """Apply the migrations this database has not seen, each in its own transaction
    (``upto``: stop after that version — tests build older databases with it)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    done = row[0] or 0
    for version, script in enumerate(MIGRATIONS, start=1):
        if version <= done:
            continue
        if upto is not None and version > upto:
            break
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
