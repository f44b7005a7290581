-- The event log: the source of truth. Append-only.
--
-- Global order is gap-free: every append takes the row lock on event_log_head, assigns the next
-- positions and holds the lock until it commits, so appends commit in position order and a reader
-- that sees position p has already seen every position below p.

CREATE TABLE event_log_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL
);
INSERT INTO event_log_head (position) VALUES (0);

CREATE TABLE event_streams (
    stream_id text   PRIMARY KEY,
    revision  bigint NOT NULL
);

CREATE TABLE events (
    position       bigint      PRIMARY KEY,
    stream_id      text        NOT NULL,
    category       text        NOT NULL GENERATED ALWAYS AS (split_part(stream_id, '-', 1)) STORED,
    revision       bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    schema_version smallint    NOT NULL,
    -- json, not jsonb: stored as written, cheaper to write and to read back; never queried in SQL.
    data           json        NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX events_stream_revision ON events (stream_id, revision);
CREATE UNIQUE INDEX events_event_id ON events (event_id);
-- Subscriptions to the rare non-hit categories (properties, domain claims) must not scan every hit.
CREATE INDEX events_non_hit_position ON events (position) WHERE category <> 'hits';
