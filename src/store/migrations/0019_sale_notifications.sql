-- Commerce follow-ups (issue 23): when a flash sale sold out (its marker ends there), and
-- notifications for one viewer about one sale: the auction they won, the unit they claimed.

-- Set once, when a claim took the last unit; the PROGRAM-DATE-TIME of the picture then.
ALTER TABLE flash_sales ADD COLUMN sold_out_at TEXT;
ALTER TABLE flash_sales ADD COLUMN sold_out_pdt TEXT;

-- Notifications gain the kinds 'auction_won' and 'flash_sale_claimed', what they are about
-- (`subject`: the auction or reservation id; '' for the stream announcements, which stay one per
-- viewer, stream and kind) and their details (JSON). SQLite cannot change a CHECK or a UNIQUE, so
-- the table is rebuilt.
CREATE TABLE notifications_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    viewer_id  TEXT NOT NULL REFERENCES viewers(id),
    kind       TEXT NOT NULL CHECK (kind IN ('live', 'upcoming', 'reminder', 'auction_won', 'flash_sale_claimed')),
    stream_id  TEXT NOT NULL REFERENCES streams(id),
    created_at TEXT NOT NULL,
    read_at    TEXT,
    title      TEXT,
    subject    TEXT NOT NULL DEFAULT '',
    detail     TEXT,
    UNIQUE (viewer_id, stream_id, kind, subject)
);
INSERT INTO notifications_new (id, viewer_id, kind, stream_id, created_at, read_at, title)
    SELECT id, viewer_id, kind, stream_id, created_at, read_at, title FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_viewer ON notifications(viewer_id, id);
