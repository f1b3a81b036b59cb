-- Trust and commerce: promo codes and their redemptions, viewer reports, takedowns, strikes.

-- A stream's promo codes. Codes are unique per stream whatever their case (`code_key` is the
-- upper-case form the lookups use).
CREATE TABLE promos (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id       TEXT NOT NULL REFERENCES streams(id),
    code            TEXT NOT NULL,
    code_key        TEXT NOT NULL,
    description     TEXT NOT NULL,
    discount        TEXT NOT NULL,          -- "10%" or "5.00 EUR"
    live_only       INTEGER NOT NULL,
    starts_at       TEXT,
    ends_at         TEXT,
    max_redemptions INTEGER,
    created_at      TEXT NOT NULL,
    UNIQUE (stream_id, code_key)
);
CREATE INDEX promos_code ON promos(code_key);

-- One redemption per viewer and code.
CREATE TABLE promo_redemptions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    promo_id   INTEGER NOT NULL REFERENCES promos(id),
    viewer_id  TEXT NOT NULL REFERENCES viewers(id),
    created_at TEXT NOT NULL,
    UNIQUE (promo_id, viewer_id)
);

-- Viewer reports; the target is a stream or an (opaque) chat message id, one per viewer each.
CREATE TABLE reports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    viewer_id   TEXT NOT NULL REFERENCES viewers(id),
    target_kind TEXT NOT NULL CHECK (target_kind IN ('stream', 'chat_message')),
    target_id   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (viewer_id, target_kind, target_id)
);
CREATE INDEX reports_target ON reports(target_kind, target_id);

-- Streams an admin took down (for good: they stay practice).
CREATE TABLE takedowns (
    stream_id  TEXT PRIMARY KEY REFERENCES streams(id),
    reason     TEXT NOT NULL,
    policy     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- One strike per takedown; an admin clears them (cleared_at), the history stays.
CREATE TABLE strikes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    creator_id TEXT NOT NULL REFERENCES creators(id),
    stream_id  TEXT NOT NULL REFERENCES streams(id),
    reason     TEXT NOT NULL,
    policy     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    cleared_at TEXT
);
CREATE INDEX strikes_creator ON strikes(creator_id, cleared_at);
