-- The project nodes: each beats every half second from a connection of its own. A node counts as
-- alive while that connection is open and its last beat is recent; the nodes alive share the
-- slots (partitions) of each generation evenly, each leading at most its share.
CREATE TABLE projection_nodes (
    node        uuid        PRIMARY KEY,
    -- The backend of the node's heartbeat connection.
    backend_pid integer     NOT NULL,
    seen_at     timestamptz NOT NULL
);
