-- PostgreSQL twin of ../0012_public_replays.sql.
-- The public replay of a stream: its public intervals of the recording, back to back (the
-- recording itself, rehearsal included, stays the owner's).
CREATE TABLE public_replays (
    stream_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES streams(id),
    state       TEXT COLLATE "C" NOT NULL,  -- finalizing | ready | failed
    intervals   TEXT COLLATE "C" NOT NULL,  -- JSON [[start_ms, end_ms], ...] in recording time
    bytes       BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    error       TEXT COLLATE "C",
    updated_at  TEXT COLLATE "C" NOT NULL
);
