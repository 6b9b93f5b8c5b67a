-- +goose Up
CREATE TABLE orders (
    id         TEXT    PRIMARY KEY,           -- UUIDv7
    user_id    TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    currency   TEXT    NOT NULL,              -- ISO 4217
    items      TEXT    NOT NULL,              -- JSON array of items
    total      INTEGER NOT NULL,              -- minor units of currency
    comment    TEXT    NOT NULL DEFAULT '',
    version    INTEGER NOT NULL,
    created_at TEXT    NOT NULL,              -- RFC 3339, UTC, microseconds
    updated_at TEXT    NOT NULL
) STRICT;
CREATE INDEX orders_user_id ON orders (user_id, id);

-- The outbox: one row per event, deleted once the broker acknowledged it.
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT    NOT NULL UNIQUE,
    type        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    time        TEXT    NOT NULL,
    dataschema  TEXT    NOT NULL,
    sequence    INTEGER NOT NULL,
    traceparent TEXT    NOT NULL DEFAULT '',
    data        TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
) STRICT;

CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,               -- the order as first returned, JSON
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
) STRICT;
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- Leases elect one holder of a role among processes (one active relay).
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;

-- +goose Down
DROP TABLE leases;
DROP TABLE idempotency_keys;
DROP TABLE outbox;
DROP TABLE orders;
