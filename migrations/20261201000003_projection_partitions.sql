-- Projections partitioned by property: a generation of a partitioned projection (`hits`) is
-- built by `partitions` runners, each folding the events of the properties that hash to it, with
-- a checkpoint, a lock and exactly-once writes of its own. Runners can lead on different nodes, and
-- a rebuild replays its partitions in parallel.
--
-- `projection_generations.position` stays the generation's checkpoint for readers (status,
-- switches, waits): it is the lowest of its partitions' checkpoints, written in the same
-- transaction as each partition's.
ALTER TABLE projection_generations
    ADD COLUMN partitions integer NOT NULL DEFAULT 1 CHECK (partitions BETWEEN 1 AND 64);

CREATE TABLE projection_partitions (
    projection        text             NOT NULL,
    generation        integer          NOT NULL,
    partition         integer          NOT NULL CHECK (partition >= 0),
    position          bigint           NOT NULL DEFAULT 0,
    events_per_second double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (projection, generation, partition),
    FOREIGN KEY (projection, generation) REFERENCES projection_generations (projection, generation)
);
INSERT INTO projection_partitions (projection, generation, partition, position, events_per_second)
    SELECT projection, generation, 0, position, events_per_second FROM projection_generations;
