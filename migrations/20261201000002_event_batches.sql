-- The log as record batches: one row per append and category, holding consecutive positions.
--
-- A row per event cost 854 bytes per hit with its three indexes. A batch row holds the events of
-- one append (thousands, for the Appender's group commits) in `records`, a compact binary record
-- batch that PostgreSQL compresses with lz4, plus what the port's reads need an index for:
-- - positions: `first_position`..`last_position`, dense and gap-free as before (appends still take
--   the `event_log_head` row lock until they commit);
-- - reads by stream: `streams` lists the `stream_no` of every stream with events in the batch
--   (GIN), and the records carry each event's stream and revision;
-- - idempotency by event id: `event_ids` lists the batch's event ids in record order (GIN).
-- One batch holds one category, so subscriptions to the rare non-hit categories skip hits.
--
-- Existing `events` rows are converted into batches by `footfall migrate` (a Rust step: the
-- record format is not SQL), which then drops the table.

ALTER TABLE event_streams ADD COLUMN stream_no bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX event_streams_stream_no ON event_streams (stream_no);

CREATE TABLE event_batches (
    first_position bigint      PRIMARY KEY,
    last_position  bigint      NOT NULL CHECK (last_position >= first_position),
    category       text        NOT NULL,
    streams        bigint[]    NOT NULL,
    event_ids      uuid[]      NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    records        bytea       NOT NULL
);
ALTER TABLE event_batches ALTER COLUMN records SET COMPRESSION lz4;
-- Looked up by every append (idempotent retries): no pending list to scan on each lookup.
CREATE INDEX event_batches_event_ids ON event_batches USING gin (event_ids) WITH (fastupdate = off);
CREATE INDEX event_batches_streams ON event_batches USING gin (streams);
CREATE INDEX event_batches_non_hit ON event_batches (first_position) WHERE category <> 'hits';
