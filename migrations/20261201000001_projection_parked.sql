-- Events a projection could not apply because of their own data (a value the read model cannot
-- hold, an event the code cannot decode). The projection parks them here and goes on, so that no
-- accepted event can stall it; a rebuild parks the same ones. After a fix, an operator asks for a
-- replay, and the projection's runner applies them and removes them from here.
CREATE TABLE projection_parked (
    projection       text        NOT NULL,
    generation       integer     NOT NULL,
    position         bigint      NOT NULL,
    event_id         uuid        NOT NULL,
    stream_id        text        NOT NULL,
    event_type       text        NOT NULL,
    error            text        NOT NULL,
    parked_at        timestamptz NOT NULL DEFAULT now(),
    replay_requested boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (projection, generation, position),
    FOREIGN KEY (projection, generation) REFERENCES projection_generations (projection, generation)
);
-- Runners look for replay requests every few hundred milliseconds.
CREATE INDEX projection_parked_replays ON projection_parked (projection, generation)
    WHERE replay_requested;
