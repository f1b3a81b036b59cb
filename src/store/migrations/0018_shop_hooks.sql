-- Shop hooks (issue 23): promo codes on order lines, cart adds, "remind me" on upcoming streams
-- and reminder notifications.

-- The promo code an attributed order line was sold with (the stream's code as its creator typed
-- it); NULL: none, or a code the stream does not have.
ALTER TABLE commissions ADD COLUMN promo_code TEXT;
CREATE INDEX commissions_promo ON commissions(stream_id, promo_code) WHERE promo_code IS NOT NULL;

-- "Add to cart" taps on a stream's products (watch page and embedded player).
CREATE TABLE cart_adds (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id  TEXT NOT NULL REFERENCES streams(id),
    product_id TEXT NOT NULL,
    viewer_id  TEXT REFERENCES viewers(id),   -- NULL: not signed in
    embedded   INTEGER NOT NULL,              -- from /embed/{id}
    at         TEXT NOT NULL
);
CREATE INDEX cart_adds_stream ON cart_adds(stream_id, at);

-- A viewer's "remind me" on an upcoming stream; fired_at is set once the reminder was sent (at
-- the stream's scheduled time, whatever restarts happen in between).
CREATE TABLE reminders (
    viewer_id  TEXT NOT NULL REFERENCES viewers(id),
    stream_id  TEXT NOT NULL REFERENCES streams(id),
    created_at TEXT NOT NULL,
    fired_at   TEXT,
    PRIMARY KEY (viewer_id, stream_id)
);
CREATE INDEX reminders_pending ON reminders(stream_id) WHERE fired_at IS NULL;

-- Notifications gain the kind 'reminder': SQLite cannot change a CHECK, so the table is rebuilt.
CREATE TABLE notifications_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    viewer_id  TEXT NOT NULL REFERENCES viewers(id),
    kind       TEXT NOT NULL CHECK (kind IN ('live', 'upcoming', 'reminder')),
    stream_id  TEXT NOT NULL REFERENCES streams(id),
    created_at TEXT NOT NULL,
    read_at    TEXT,
    title      TEXT,
    UNIQUE (viewer_id, stream_id, kind)
);
INSERT INTO notifications_new (id, viewer_id, kind, stream_id, created_at, read_at, title)
    SELECT id, viewer_id, kind, stream_id, created_at, read_at, title FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_viewer ON notifications(viewer_id, id);
