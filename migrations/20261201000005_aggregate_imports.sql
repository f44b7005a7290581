-- Imports of aggregates (Plausible's CSV layout) count the files and days they hold. Their state
-- becomes `deleted` once an `ImportDeleted` event is in the log.
ALTER TABLE imports
    ADD COLUMN files bigint NOT NULL DEFAULT 0,
    ADD COLUMN days  bigint NOT NULL DEFAULT 0;
