-- Whether a generation has the indexes its projection's writes do not use (`Projection::indexes`).
-- A generation rebuilt beside the live one is created without them and gets them once it has
-- caught up: it is switched in only then. Generations created before this had them from the start.
ALTER TABLE projection_generations ADD COLUMN indexed boolean NOT NULL DEFAULT true;
