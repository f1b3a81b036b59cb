-- PostgreSQL twin of ../0024_recording_sessions.sql.
-- Issue 19: where each session of a stream's recording starts in it (a stream that went on on
-- another node after its node died is one recording of its sessions). A focus change is stamped
-- with the media time of the session it was made in; on the recording's timeline it is that plus
-- the start of the session (the latest to start at or before the change). A stream recorded in
-- one session has no rows.
CREATE TABLE recording_sessions (
    stream_id  TEXT COLLATE "C" NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    started_ms BIGINT NOT NULL,
    at_ms      BIGINT NOT NULL,
    PRIMARY KEY (stream_id, started_ms)
);
