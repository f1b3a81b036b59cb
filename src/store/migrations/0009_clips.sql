-- One MP4 clip per product focus interval, cut from the recording after the stream ended.
CREATE TABLE clips (
    stream_id    TEXT NOT NULL REFERENCES streams(id),
    seq          INTEGER NOT NULL,      -- the focus change it shows (focus_events.seq); file clips/{seq}.mp4
    product_id   TEXT NOT NULL,
    title        TEXT NOT NULL,
    start_ms     INTEGER NOT NULL,      -- the focus interval, in recording time
    end_ms       INTEGER NOT NULL,
    cut_start_ms INTEGER,               -- what the file covers (starts on a keyframe)
    cut_end_ms   INTEGER,
    bytes        INTEGER,
    state        TEXT NOT NULL,         -- cutting | ready | failed
    error        TEXT,
    PRIMARY KEY (stream_id, seq)
);
