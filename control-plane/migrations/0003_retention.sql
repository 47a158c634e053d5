-- Days of point-in-time history a database keeps in the object store
-- (0 keeps everything); NULL leaves the choice to the host's default.
ALTER TABLE databases ADD COLUMN retention_days BIGINT;
