-- Creator analytics (issue 18): what was sampled while a stream was live, and the player sessions
-- that watched it. Everything else the reports show (chat, click-outs, orders, redemptions,
-- follows, focus) is read from the tables that already hold it, so the numbers agree with the
-- endpoints that list them.

-- The sampling grid of a stream: bucket k covers [started_at + k * step_ms, … + step_ms).
CREATE TABLE analytics_grids (
    stream_id  TEXT PRIMARY KEY REFERENCES streams(id) ON DELETE CASCADE,
    started_at TEXT NOT NULL,
    step_ms    INTEGER NOT NULL
);

-- One sample per bucket while live: the mode then, and the audience (the owner never counts).
CREATE TABLE analytics_samples (
    stream_id TEXT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    bucket    INTEGER NOT NULL,
    at        TEXT NOT NULL,                   -- when it was taken
    mode      TEXT NOT NULL CHECK (mode IN ('practice', 'public')),
    players   INTEGER NOT NULL,                -- HLS sessions that fetched a media playlist lately
    sockets   INTEGER NOT NULL,                -- live-channel connections
    PRIMARY KEY (stream_id, bucket)
);

-- Player sessions (signed sids) that loaded media of the stream, live or as a replay; at most a
-- bounded number per stream. watch_ms: first to last media playlist fetch, plus a segment.
CREATE TABLE analytics_sessions (
    stream_id TEXT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    sid       TEXT NOT NULL,
    replay    INTEGER NOT NULL,
    first_at  TEXT NOT NULL,
    last_at   TEXT NOT NULL,
    watch_ms  INTEGER NOT NULL,
    PRIMARY KEY (stream_id, sid)
);
