-- +goose Up
CREATE TABLE subscriptions (
    id             TEXT    PRIMARY KEY,        -- UUIDv7
    user_id        TEXT    NOT NULL,
    channel        TEXT    NOT NULL,           -- email | webhook
    address        TEXT    NOT NULL,           -- email address or webhook URL
    patterns       TEXT    NOT NULL,           -- JSON array of event-type patterns
    patterns_key   TEXT    NOT NULL,           -- the patterns sorted and joined: the uniqueness key
    scope          TEXT    NOT NULL,           -- own | all
    filter         TEXT    NOT NULL DEFAULT '',-- CEL expression
    status         TEXT    NOT NULL,           -- active | paused | unsubscribed
    webhook_secret TEXT    NOT NULL DEFAULT '',
    version        INTEGER NOT NULL,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL
) STRICT;
CREATE UNIQUE INDEX subscriptions_unique ON subscriptions (user_id, channel, address, patterns_key);
CREATE INDEX subscriptions_user_id ON subscriptions (user_id, id);

-- One row, bumped with every subscription change, so matchers know to reload.
CREATE TABLE subscriptions_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO subscriptions_version (id, version) VALUES (1, 0);

-- The inbox: every event the notifier handled, keyed by event id. It is
-- what makes a redelivered event a no-op, and it keeps the event for the
-- delivery workers and the activity log.
CREATE TABLE inbox (
    event_id    TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    source      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    time        TEXT NOT NULL,
    dataschema  TEXT NOT NULL,
    sequence    INTEGER NOT NULL,
    traceparent TEXT NOT NULL DEFAULT '',
    data        TEXT NOT NULL,
    status      TEXT NOT NULL,                 -- handled | expired
    received_at TEXT NOT NULL
) STRICT;

CREATE TABLE deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT, -- creation order: per-order order
    id              TEXT    NOT NULL UNIQUE,           -- UUIDv7
    event_id        TEXT    NOT NULL REFERENCES inbox (event_id),
    event_type      TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    subscription_id TEXT    NOT NULL,                  -- no foreign key: deliveries outlive subscriptions
    user_id         TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    address         TEXT    NOT NULL,
    status          TEXT    NOT NULL,                  -- pending | sent | dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    next_attempt_at TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    sent_at         TEXT,
    UNIQUE (event_id, subscription_id)
) STRICT;
-- The claim: pending deliveries by due time, and, for each, whether an
-- earlier delivery of its subscription and subject is still pending. Both
-- hold pending rows only, so they stay small however long the log grows.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_order ON deliveries (subscription_id, subject, seq) WHERE status = 'pending';
-- The activity log, newest first, by subscription or by user (by event:
-- the UNIQUE (event_id, subscription_id) index).
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, id);
CREATE INDEX deliveries_user ON deliveries (user_id, id);

CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

-- +goose Down
DROP TABLE secrets;
DROP TABLE deliveries;
DROP TABLE inbox;
DROP TABLE subscriptions_version;
DROP TABLE subscriptions;
