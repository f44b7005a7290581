-- The lease of each projection runner that leads a slot (a partition of a generation). The leader
-- renews it every second from a connection of its pool; a standby that finds it more than a few
-- seconds old ends the leader's session (whose advisory lock then frees), so a leader that hangs,
-- is frozen or lost its network hands over within seconds even where TCP keepalives cannot tell.
CREATE TABLE projection_leases (
    projection  text        NOT NULL,
    generation  integer     NOT NULL,
    partition   integer     NOT NULL,
    -- The backend of the leader's lock connection.
    leader_pid  integer     NOT NULL,
    renewed_at  timestamptz NOT NULL,
    PRIMARY KEY (projection, generation, partition)
);
