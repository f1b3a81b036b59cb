-- PostgreSQL twin of ../0015_analytics.sql (the 0/1 flag replay: BIGINT).
-- Creator analytics (issue 18): what was sampled while a stream was live, and the player sessions
-- that watched it. Everything else the reports show (chat, click-outs, orders, redemptions,
-- follows, focus) is read from the tables that already hold it, so the numbers agree with the
-- endpoints that list them.

-- The sampling grid of a stream: bucket k covers [started_at + k * step_ms, … + step_ms).
CREATE TABLE analytics_grids (
    stream_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES streams(id) ON DELETE CASCADE,
    started_at TEXT COLLATE "C" NOT NULL,
    step_ms    BIGINT NOT NULL
);

-- One sample per bucket while live: the mode then, and the audience (the owner never counts).
CREATE TABLE analytics_samples (
    stream_id TEXT COLLATE "C" NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    bucket    BIGINT NOT NULL,
    at        TEXT COLLATE "C" NOT NULL,       -- when it was taken
    mode      TEXT COLLATE "C" NOT NULL CHECK (mode IN ('practice', 'public')),
    players   BIGINT NOT NULL,                 -- HLS sessions that fetched a media playlist lately
    sockets   BIGINT NOT NULL,                 -- live-channel connections
    PRIMARY KEY (stream_id, bucket)
);

-- Player sessions (signed sids) that loaded media of the stream, live or as a replay; at most a
-- bounded number per stream. watch_ms: first to last media playlist fetch, plus a segment.
CREATE TABLE analytics_sessions (
    stream_id TEXT COLLATE "C" NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    sid       TEXT COLLATE "C" NOT NULL,
    replay    BIGINT NOT NULL,
    first_at  TEXT COLLATE "C" NOT NULL,
    last_at   TEXT COLLATE "C" NOT NULL,
    watch_ms  BIGINT NOT NULL,
    PRIMARY KEY (stream_id, sid)
);
