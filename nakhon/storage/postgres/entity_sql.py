"""The PostgreSQL writer's entity statements: lock, insert, update and delete entity rows in
bulk (``unnest`` of arrays: one round trip per statement for a whole batch), their spatial
rows and the tenants seen."""

from __future__ import annotations

from .codec import ENTITY_COLUMNS

SELECT_FOR_UPDATE = f"""
SELECT e.pk, e.tenant, {ENTITY_COLUMNS}
FROM entities e
JOIN unnest($1::text[], $2::text[]) AS k(tenant, id) ON e.tenant = k.tenant AND e.id = k.id
ORDER BY e.tenant, e.id
FOR UPDATE OF e
"""
# ORDER BY above: rows are locked in one global order, so two processes cannot deadlock on it.

INSERT = """
INSERT INTO entities (tenant, id, type, types, scopes, created_at, modified_at, doc)
SELECT u.tenant, u.id, coalesce((u.types::text[])[1], ''), u.types::text[],
       u.scopes::text[], u.created_at, u.modified_at, u.doc
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::jsonb[]) AS u(tenant, id, types, scopes, created_at, modified_at, doc)
RETURNING pk, tenant, id
"""

UPDATE = """
UPDATE entities e
SET type = coalesce((u.types::text[])[1], ''), types = u.types::text[],
    scopes = u.scopes::text[], created_at = u.created_at, modified_at = u.modified_at,
    doc = u.doc
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])
     AS u(pk, types, scopes, created_at, modified_at, doc)
WHERE e.pk = u.pk
"""

DELETE = "DELETE FROM entities WHERE pk = ANY($1::bigint[])"
GEO_DELETE = "DELETE FROM entity_geo WHERE entity_pk = ANY($1::bigint[])"
GEO_INSERT = """
INSERT INTO entity_geo (entity_pk, attr, geom)
SELECT u.pk, u.attr, ST_GeomFromEWKB(u.wkb)
FROM unnest($1::bigint[], $2::text[], $3::bytea[]) AS u(pk, attr, wkb)
"""
TENANTS = "INSERT INTO tenants (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING"
