-- Read models are rebuilt from the log into a new *generation* of their tables while the old one
-- keeps serving reads. Each read model is a view (e.g. `properties`) over the live generation's
-- table (`properties_g3`); switching generations replaces the views in one transaction.
--
-- The read-model tables are created by the projections themselves (src/projections/), per
-- generation; this table records the generations and their checkpoints.

-- Mergeable distinct-count sketches for the rollups (Debian: postgresql-15-hll).
CREATE EXTENSION IF NOT EXISTS hll;

-- The properties table becomes a generation of the `properties` projection, rebuilt from the log.
DROP TABLE properties;
DROP TABLE projection_checkpoints;

CREATE TABLE projection_generations (
    projection  text        NOT NULL,
    generation  integer     NOT NULL CHECK (generation > 0),
    state       text        NOT NULL CHECK (state IN ('building', 'live', 'retired')),
    -- Checkpoint: the position of the last event this generation applied. Written in the same
    -- transaction as the generation's read-model changes.
    position    bigint      NOT NULL DEFAULT 0,
    -- Recent throughput, written with the checkpoint (for progress and ETA).
    events_per_second double precision NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    live_at     timestamptz,
    retired_at  timestamptz,
    dropped     boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (projection, generation)
);
CREATE UNIQUE INDEX projection_generations_one_live ON projection_generations (projection) WHERE state = 'live';
CREATE UNIQUE INDEX projection_generations_one_building ON projection_generations (projection) WHERE state = 'building';
