-- The log as record batches: one row per append and category, holding consecutive positions.
--
-- A row per event cost 854 bytes per hit with its three indexes. A batch row holds the events of
-- one append (thousands, for the Appender's group commits) in `records`, a compact binary record
-- batch that PostgreSQL compresses with lz4, plus what the port's reads need an index for:
-- - positions: `first_position`..`last_position`, dense and gap-free as before (appends still take
--   the `event_log_head` row lock until they commit);
-- - reads by stream: `streams` lists the `stream_no` of every stream with events in the batch
--   (GIN), and the records carry each event's stream and revision;
-- - the batch's event ids, in record order, in `event_ids`; idempotency by event id is the
--   `event_ids` table's primary key (a B-tree probe per id: a GIN index over the arrays made the
--   planner scan every batch on each append).
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
-- Every event id the log holds. An append inserts its ids with ON CONFLICT DO NOTHING: those it
-- gets back are new, the others an idempotent retry. UUIDv7 ids arrive in time order, so the index
-- grows at its right edge.
CREATE TABLE event_ids (event_id uuid PRIMARY KEY);
CREATE INDEX event_batches_streams ON event_batches USING gin (streams);
CREATE INDEX event_batches_non_hit ON event_batches (first_position) WHERE category <> 'hits';
