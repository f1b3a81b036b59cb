-- Webhooks of creators and their durable outbox: a delivery row is written in the same
-- transaction as nothing else depends on it, before any attempt, so a restart loses none.
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    creator_id TEXT NOT NULL REFERENCES creators(id),
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,          -- comma-separated event names
    secret     TEXT NOT NULL,          -- needed to sign; shown once at creation
    created_at TEXT NOT NULL
);
CREATE INDEX webhooks_creator ON webhooks(creator_id);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_at);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, id);
