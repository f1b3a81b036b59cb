-- PostgreSQL twin of ../0009_clips.sql.
-- One MP4 clip per product focus interval, cut from the recording after the stream ended.
CREATE TABLE clips (
    stream_id    TEXT COLLATE "C" NOT NULL REFERENCES streams(id),
    seq          BIGINT NOT NULL,       -- the focus change it shows (focus_events.seq); file clips/{seq}.mp4
    product_id   TEXT COLLATE "C" NOT NULL,
    title        TEXT COLLATE "C" NOT NULL,
    start_ms     BIGINT NOT NULL,       -- the focus interval, in recording time
    end_ms       BIGINT NOT NULL,
    cut_start_ms BIGINT,                -- what the file covers (starts on a keyframe)
    cut_end_ms   BIGINT,
    bytes        BIGINT,
    state        TEXT COLLATE "C" NOT NULL,  -- cutting | ready | failed
    error        TEXT COLLATE "C",
    PRIMARY KEY (stream_id, seq)
);
