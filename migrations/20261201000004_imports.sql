-- History imports. Each run of an import is a row with its progress and counts. The salt that
-- turns an imported client address and user agent into a visitor key is kept per property and
-- file content: importing the same file again (or resuming an interrupted import) derives the same
-- visitor keys, and the address itself is never stored.
CREATE TABLE import_salts (
    property_id  uuid        NOT NULL,
    content_hash bytea       NOT NULL,
    salt         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (property_id, content_hash)
);

CREATE TABLE imports (
    id           uuid        PRIMARY KEY,
    property_id  uuid        NOT NULL,
    kind         text        NOT NULL,
    source       text        NOT NULL,
    content_hash bytea       NOT NULL,
    state        text        NOT NULL,
    total_bytes  bigint      NOT NULL,
    read_bytes   bigint      NOT NULL DEFAULT 0,
    lines        bigint      NOT NULL DEFAULT 0,
    pageviews    bigint      NOT NULL DEFAULT 0,
    bots         bigint      NOT NULL DEFAULT 0,
    assets       bigint      NOT NULL DEFAULT 0,
    redirects    bigint      NOT NULL DEFAULT 0,
    errors       bigint      NOT NULL DEFAULT 0,
    other        bigint      NOT NULL DEFAULT 0,
    invalid      bigint      NOT NULL DEFAULT 0,
    error        text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX ON imports (property_id, started_at);
