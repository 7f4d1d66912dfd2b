-- Nakhon PostgreSQL schema, version 1.
-- Applied by nakhon.storage.postgres.schema inside one transaction, under an advisory lock.
-- Object names are unqualified: they land in the first schema of the search_path, which the
-- engine sets to its own schema (if any) followed by the schema holding PostGIS.

CREATE TABLE tenants (
    name text COLLATE "C" PRIMARY KEY
);

CREATE TABLE entities (
    pk          bigserial PRIMARY KEY,
    tenant      text COLLATE "C" NOT NULL,
    -- "C" collation: ids are ordered by code point on every server and in SQLite alike, so
    -- paging is identical across engines and locales.
    id          text COLLATE "C" NOT NULL,
    type        text COLLATE "C" NOT NULL,          -- the first type, for the btree below
    types       text[] COLLATE "C" NOT NULL,
    scopes      text[] COLLATE "C",
    created_at  text NOT NULL,
    modified_at text NOT NULL,
    doc         jsonb NOT NULL,                     -- exactly Entity.doc(): {"attrs": {...}}
    -- INCLUDE (pk, types): deep pages, with or without a type filter, pick their pks with an
    -- index-only scan in id order and fetch only the page's rows (measured in
    -- tests/storage/test_postgres_perf.py: type=X at offset 50,000 23 ms → 10 ms).
    CONSTRAINT entities_tenant_id UNIQUE (tenant, id) INCLUDE (pk, types)
);
-- Serves queries on the first type (e.type); the type selection compiler tests e.types.
CREATE INDEX entities_tenant_type_id ON entities (tenant, type, id) INCLUDE (pk);
CREATE INDEX entities_types ON entities USING gin (types);
CREATE INDEX entities_doc ON entities USING gin (doc jsonb_path_ops);

-- One row per GeoProperty instance (location and any other GeoProperty), rewritten whenever an
-- entity's geo-properties change.
CREATE TABLE entity_geo (
    entity_pk bigint NOT NULL REFERENCES entities (pk) ON DELETE CASCADE,
    attr      text COLLATE "C" NOT NULL,
    geom      geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX entity_geo_entity ON entity_geo (entity_pk);
CREATE INDEX entity_geo_geom ON entity_geo USING gist (geom);
-- near;maxDistance works in metres on the spheroid (geography); this index serves ST_DWithin on
-- geography, the geometry index above serves the topological georels.
CREATE INDEX entity_geo_geog ON entity_geo USING gist ((geom::geography));

-- Temporal history: one row per attribute instance written, appended in the write transaction.
CREATE TABLE attr_history (
    tenant      text COLLATE "C" NOT NULL,
    entity_id   text COLLATE "C" NOT NULL,
    attr        text COLLATE "C" NOT NULL,
    dataset_id  text COLLATE "C",
    observed_at timestamptz,
    modified_at timestamptz NOT NULL,
    instance    jsonb NOT NULL
);
CREATE INDEX attr_history_lookup ON attr_history (tenant, entity_id, attr, observed_at);

CREATE TABLE kv (
    namespace text COLLATE "C" NOT NULL,
    key       text COLLATE "C" NOT NULL,
    value     jsonb NOT NULL,
    PRIMARY KEY (namespace, key)
);
