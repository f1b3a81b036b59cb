-- PostgreSQL twin of ../0001_init.sql. Text is COLLATE "C" (byte order, as SQLite compares it:
-- ids and RFC 3339 times are compared as text); integers are BIGINT. The CHECK on tokens.role is
-- named because 0004 replaces it.
CREATE TABLE settings (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL
);

CREATE TABLE creators (
    id         TEXT COLLATE "C" PRIMARY KEY,
    handle     TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at TEXT COLLATE "C" NOT NULL
);

-- API tokens, stored as SHA-256 hashes. creator_id is NULL for admin tokens.
CREATE TABLE tokens (
    hash       TEXT COLLATE "C" PRIMARY KEY,
    role       TEXT COLLATE "C" NOT NULL CONSTRAINT tokens_role_check CHECK (role IN ('admin', 'creator')),
    creator_id TEXT COLLATE "C" REFERENCES creators(id),
    created_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE streams (
    id           TEXT COLLATE "C" PRIMARY KEY,
    creator_id   TEXT COLLATE "C" NOT NULL REFERENCES creators(id),
    title        TEXT COLLATE "C" NOT NULL,
    category     TEXT COLLATE "C",
    scheduled_at TEXT COLLATE "C",
    mode         TEXT COLLATE "C" NOT NULL CHECK (mode IN ('practice', 'public')),
    state        TEXT COLLATE "C" NOT NULL CHECK (state IN ('ready', 'live', 'ended')),
    stream_key   TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at   TEXT COLLATE "C" NOT NULL,
    started_at   TEXT COLLATE "C",
    ended_at     TEXT COLLATE "C"
);
CREATE INDEX streams_creator ON streams(creator_id);
CREATE INDEX streams_state ON streams(state);

CREATE TABLE recordings (
    stream_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES streams(id),
    state       TEXT COLLATE "C" NOT NULL CHECK (state IN ('recording', 'finalizing', 'ready', 'failed')),
    bytes       BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    error       TEXT COLLATE "C",
    updated_at  TEXT COLLATE "C" NOT NULL
);
