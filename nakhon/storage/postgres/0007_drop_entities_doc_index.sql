-- The GIN index on the whole entity document (jsonb_path_ops) serves only @>, @? and @@ on
-- `doc` itself, and no query Nakhon builds uses them: q and attrs test expressions such as
-- (doc -> 'attrs' -> $1 -> 0 -> 'value') and (doc -> 'attrs') ?| $1, which it cannot serve.
-- It cost every entity write an update of one GIN entry per path and value of the document
-- (and made every update non-HOT): measured in bench_mqtt_ingest's raw upsert rate.
DROP INDEX IF EXISTS entities_doc;
