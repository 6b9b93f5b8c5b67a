-- +goose Up
CREATE TABLE subscriptions (
    id             uuid        PRIMARY KEY,          -- UUIDv7
    user_id        text        NOT NULL,
    channel        text        NOT NULL,             -- email | webhook
    address        text        NOT NULL,             -- email address or webhook URL
    patterns       jsonb       NOT NULL,             -- JSON array of event-type patterns
    patterns_key   text        NOT NULL,             -- the patterns sorted and joined: the uniqueness key
    scope          text        NOT NULL,             -- own | all
    filter         text        NOT NULL DEFAULT '',  -- CEL expression
    status         text        NOT NULL,             -- active | paused | unsubscribed
    webhook_secret text        NOT NULL DEFAULT '',
    version        bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
-- The address and the patterns key are hashed: together they may be longer
-- than a B-tree index entry may be (about 2.7 kB).
CREATE UNIQUE INDEX subscriptions_unique ON subscriptions (user_id, channel, md5(address), md5(patterns_key));
CREATE INDEX subscriptions_user_id ON subscriptions (user_id, id);

-- One row, bumped with every subscription change, so matchers know to reload.
-- Being a row, not a sequence, it changes when the change commits, never
-- before.
CREATE TABLE subscriptions_version (
    id      int    PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO subscriptions_version (id, version) VALUES (1, 0);

-- The inbox: every event the notifier handled, keyed by event id. It is
-- what makes a redelivered event a no-op, and it keeps the event for the
-- delivery workers and the activity log. The event id is text, not uuid:
-- CloudEvents allows any id, and an event this table refused would stop
-- the consumer. The data is json, not jsonb: kept as it came, byte for
-- byte (jsonb would also refuse a \u0000 escape).
CREATE TABLE inbox (
    event_id    text        PRIMARY KEY,
    type        text        NOT NULL,
    source      text        NOT NULL,
    subject     text        NOT NULL,
    time        timestamptz NOT NULL,
    dataschema  text        NOT NULL,
    sequence    bigint      NOT NULL,
    traceparent text        NOT NULL DEFAULT '',
    data        json        NOT NULL,
    status      text        NOT NULL,            -- handled | expired
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deliveries (
    seq             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- creation order: per-order order
    id              uuid        NOT NULL UNIQUE,                          -- UUIDv7
    event_id        text        NOT NULL REFERENCES inbox (event_id),
    event_type      text        NOT NULL,
    subject         text        NOT NULL,
    subscription_id uuid        NOT NULL,        -- no foreign key: deliveries outlive subscriptions
    user_id         text        NOT NULL,
    channel         text        NOT NULL,
    address         text        NOT NULL,
    status          text        NOT NULL,        -- pending | sent | dead
    attempts        int         NOT NULL DEFAULT 0,
    last_error      text        NOT NULL DEFAULT '',
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    UNIQUE (event_id, subscription_id)
);
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
    name  text  PRIMARY KEY,
    value bytea NOT NULL
);

-- +goose Down
DROP TABLE secrets;
DROP TABLE deliveries;
DROP TABLE inbox;
DROP TABLE subscriptions_version;
DROP TABLE subscriptions;
