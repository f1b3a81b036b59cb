CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE creators (
    id         TEXT PRIMARY KEY,
    handle     TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

-- API tokens, stored as SHA-256 hashes. creator_id is NULL for admin tokens.
CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'creator')),
    creator_id TEXT REFERENCES creators(id),
    created_at TEXT NOT NULL
);

CREATE TABLE streams (
    id           TEXT PRIMARY KEY,
    creator_id   TEXT NOT NULL REFERENCES creators(id),
    title        TEXT NOT NULL,
    category     TEXT,
    scheduled_at TEXT,
    mode         TEXT NOT NULL CHECK (mode IN ('practice', 'public')),
    state        TEXT NOT NULL CHECK (state IN ('ready', 'live', 'ended')),
    stream_key   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    ended_at     TEXT
);
CREATE INDEX streams_creator ON streams(creator_id);
CREATE INDEX streams_state ON streams(state);

CREATE TABLE recordings (
    stream_id   TEXT PRIMARY KEY REFERENCES streams(id),
    state       TEXT NOT NULL CHECK (state IN ('recording', 'finalizing', 'ready', 'failed')),
    bytes       INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    updated_at  TEXT NOT NULL
);
