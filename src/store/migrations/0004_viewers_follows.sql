-- Viewers (open registration), who follows whom, and the notifications followers get.
CREATE TABLE viewers (
    id         TEXT PRIMARY KEY,
    handle     TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

-- Tokens gain the viewer role: SQLite cannot change a CHECK, so the table is rebuilt.
CREATE TABLE tokens_new (
    hash       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'creator', 'viewer')),
    creator_id TEXT REFERENCES creators(id),
    viewer_id  TEXT REFERENCES viewers(id),
    created_at TEXT NOT NULL
);
INSERT INTO tokens_new (hash, role, creator_id, created_at)
    SELECT hash, role, creator_id, created_at FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;

CREATE TABLE follows (
    viewer_id  TEXT NOT NULL REFERENCES viewers(id),
    creator_id TEXT NOT NULL REFERENCES creators(id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (viewer_id, creator_id)
);
CREATE INDEX follows_creator ON follows(creator_id);

-- One notification per viewer, stream and kind ('live', 'upcoming'), whatever flaps.
CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    viewer_id  TEXT NOT NULL REFERENCES viewers(id),
    kind       TEXT NOT NULL CHECK (kind IN ('live', 'upcoming')),
    stream_id  TEXT NOT NULL REFERENCES streams(id),
    created_at TEXT NOT NULL,
    read_at    TEXT,
    UNIQUE (viewer_id, stream_id, kind)
);
CREATE INDEX notifications_viewer ON notifications(viewer_id, id);

-- Which announcements a stream has made (followers are told once per stream and kind).
CREATE TABLE stream_announcements (
    stream_id TEXT NOT NULL REFERENCES streams(id),
    kind      TEXT NOT NULL,
    at        TEXT NOT NULL,
    PRIMARY KEY (stream_id, kind)
);
