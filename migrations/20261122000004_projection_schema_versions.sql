-- The version of a projection's tables and processing rules each generation was built with. A
-- node whose code has a newer version rebuilds the projection (beside the live generation) on
-- start; generations of another version are not run.
ALTER TABLE projection_generations ADD COLUMN schema_version integer NOT NULL DEFAULT 1;
