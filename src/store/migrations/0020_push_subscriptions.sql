-- Web Push (issue 23): the browsers' push subscriptions of viewers. An endpoint is one browser's
-- subscription, so it belongs to one viewer (subscribing again, maybe as another viewer, replaces
-- it). The server's VAPID key lives in `settings` ('vapid_key'), like the signing secret.
CREATE TABLE push_subscriptions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    viewer_id  TEXT NOT NULL REFERENCES viewers(id) ON DELETE CASCADE,
    endpoint   TEXT NOT NULL UNIQUE,
    p256dh     BLOB NOT NULL,
    auth       BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX push_subscriptions_viewer ON push_subscriptions(viewer_id);
