-- History rows cost the server less to insert (issue 4: backfill against the engine's raw rate).
--
-- 1. ts, num and deleted stop being generated columns: the writer sends them with each row,
--    computed once in Python from values it already holds (as the SQLite writer has done since
--    migration 6), instead of the server evaluating three expressions, two of them jsonb
--    look-ups, per row. DROP EXPRESSION keeps the stored values and rewrites nothing. NOT NULL
--    makes a write path that forgot them fail loudly instead of hiding rows from queries
--    (the generated ts and deleted were never NULL, so the check passes on existing rows).
-- 2. hid is found through a BRIN index instead of a unique B-tree. hid comes from the identity
--    sequence (no cache), so it grows with the physical order of the rows; BRIN keeps a min/max
--    per block range, and costs an insert next to nothing where the B-tree paid ~0.7 µs a row.
--    Its readers are rare or ranged: one instance by instanceId (hid and series: a block range
--    of a few thousand rows, rechecked) and the KPI engine's "written after the mark" scan
--    (a range at the end of the table). Uniqueness was never the index's job: the identity is
--    GENERATED ALWAYS. The KPI mark reads the sequence instead of max(hid) (history_kpi.mark).
ALTER TABLE attr_history ALTER COLUMN ts DROP EXPRESSION;
ALTER TABLE attr_history ALTER COLUMN num DROP EXPRESSION;
ALTER TABLE attr_history ALTER COLUMN deleted DROP EXPRESSION;
ALTER TABLE attr_history ALTER COLUMN ts SET NOT NULL,
                         ALTER COLUMN deleted SET NOT NULL;
DROP INDEX attr_history_hid;
CREATE INDEX attr_history_hid ON attr_history USING brin (hid) WITH (autosummarize = on);
