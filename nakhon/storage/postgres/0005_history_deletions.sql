-- Deletions in temporal history (nakhon.storage.history_base): the writer appends a deletion
-- marker (an instance with deletedAt and the NGSI-LD Null value) for every attribute instance
-- deleted, and an entity marker (attr '@entity') for every entity deleted.
--   deleted  true for markers, in the covering index so that aggregation leaves them out with
--            an index-only scan (a STORED column: the table is rewritten once, as in 0003);
-- the partial index finds the entity markers of a tenant without scanning its history.

ALTER TABLE attr_history
    ADD COLUMN deleted boolean GENERATED ALWAYS AS ((instance -> 'deletedAt') IS NOT NULL) STORED;

DROP INDEX attr_history_by_time;
CREATE INDEX attr_history_by_time
    ON attr_history (tenant, entity_id, attr, ts) INCLUDE (num, dataset_id, deleted);
CREATE INDEX attr_history_entity_marks
    ON attr_history (tenant, entity_id, ts) WHERE attr = '@entity';
