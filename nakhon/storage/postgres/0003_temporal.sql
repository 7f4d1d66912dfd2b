-- Temporal queries (nakhon.temporal): columns derived from what the writer already stores, so
-- the write path (binary COPY with an explicit column list) is unchanged.
--   hid  a stable id per instance (instanceId = urn:ngsi-ld:attribute:instance:<hid>);
--   ts   the effective observation time: observedAt, else the modification time (issue 3);
--   num  the value when it is a JSON number, so aggregation never parses JSON.
-- The covering index serves instance reads and GROUP BY time-bucket aggregation with an
-- index-only scan; it replaces the observed_at index, which a coalesced time cannot use.

ALTER TABLE attr_history ADD COLUMN hid bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE attr_history
    ADD COLUMN ts timestamptz GENERATED ALWAYS AS (coalesce(observed_at, modified_at)) STORED;
ALTER TABLE attr_history
    ADD COLUMN num double precision GENERATED ALWAYS AS (
        CASE WHEN jsonb_typeof(instance -> 'value') = 'number'
             THEN (instance -> 'value')::double precision END) STORED;

CREATE UNIQUE INDEX attr_history_hid ON attr_history (hid);
DROP INDEX attr_history_lookup;
CREATE INDEX attr_history_by_time
    ON attr_history (tenant, entity_id, attr, ts) INCLUDE (num, dataset_id);
