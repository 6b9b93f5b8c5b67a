-- +goose Up
CREATE TABLE orders (
    id         uuid        PRIMARY KEY,          -- UUIDv7
    user_id    text        NOT NULL,
    status     text        NOT NULL,
    currency   text        NOT NULL,             -- ISO 4217
    items      jsonb       NOT NULL,             -- JSON array of items
    total      bigint      NOT NULL,             -- minor units of currency
    comment    text        NOT NULL DEFAULT '',
    version    bigint      NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX orders_user_id ON orders (user_id, id);

-- The outbox: one row per event, deleted once the broker acknowledged it.
CREATE TABLE outbox (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    type        text        NOT NULL,
    source      text        NOT NULL,
    subject     text        NOT NULL,
    time        timestamptz NOT NULL,
    dataschema  text        NOT NULL,
    sequence    bigint      NOT NULL,
    traceparent text        NOT NULL DEFAULT '',
    data        jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE idempotency_keys (
    key          text        PRIMARY KEY,
    request_hash text        NOT NULL,
    response     jsonb       NOT NULL,           -- the order as first returned
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- Leases elect one holder of a role among processes (one active relay).
CREATE TABLE leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE leases;
DROP TABLE idempotency_keys;
DROP TABLE outbox;
DROP TABLE orders;
