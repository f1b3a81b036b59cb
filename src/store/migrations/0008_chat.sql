-- The chat of each stream, creators' bans and blocked words.
-- A deleted message is kept (deleted_at set) but never shown again. Chat goes with its stream when
-- a stream that never went live is deleted.
CREATE TABLE chat_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id  TEXT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    handle     TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'creator', 'admin')),
    viewer_id  TEXT REFERENCES viewers(id),
    text       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE INDEX chat_messages_stream ON chat_messages(stream_id, id);

-- A viewer banned from the chat of all of a creator's streams, until `until` (NULL: until lifted).
CREATE TABLE chat_bans (
    creator_id TEXT NOT NULL REFERENCES creators(id),
    viewer_id  TEXT NOT NULL REFERENCES viewers(id),
    created_at TEXT NOT NULL,
    until      TEXT,
    PRIMARY KEY (creator_id, viewer_id)
);

-- Words and phrases a creator's chats refuse (stored lowercase).
CREATE TABLE chat_blocked_words (
    creator_id TEXT NOT NULL REFERENCES creators(id),
    word       TEXT NOT NULL,
    PRIMARY KEY (creator_id, word)
);
