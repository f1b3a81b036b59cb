-- The public replay of a stream: its public intervals of the recording, back to back (the
-- recording itself, rehearsal included, stays the owner's).
CREATE TABLE public_replays (
    stream_id   TEXT PRIMARY KEY REFERENCES streams(id),
    state       TEXT NOT NULL,          -- finalizing | ready | failed
    intervals   TEXT NOT NULL,          -- JSON [[start_ms, end_ms], ...] in recording time
    bytes       INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    updated_at  TEXT NOT NULL
);
