-- Checkpoints of projections: the position of the last event each one has applied. Written in the
-- same transaction as the projection's read-model changes.
CREATE TABLE projection_checkpoints (
    projection text        PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Read model of the property aggregates: what collection and the APIs resolve properties with.
CREATE TABLE properties (
    id             uuid        PRIMARY KEY,
    domain         text        NOT NULL UNIQUE,
    timezone       text        NOT NULL,
    name           text        NOT NULL,
    measurement_id text        NOT NULL UNIQUE,
    api_secret     text        NOT NULL,
    read_key       text        NOT NULL UNIQUE,
    registered_at  timestamptz NOT NULL,
    position       bigint      NOT NULL
);

-- Daily salts for visitor keys. Salts older than two days are deleted, after which a visitor key
-- can no longer be linked to an IP address.
CREATE TABLE visitor_salts (
    day  date  PRIMARY KEY,
    salt bytea NOT NULL
);
