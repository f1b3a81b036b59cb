-- PostgreSQL twin of ../0023_recording_jobs.sql.
-- Issue 19: a stream's recording, public replay and clips still to be made and put into the
-- bucket. The node that makes them claims the job until `claimed_until` and renews the claim while
-- it works; the row is deleted once they are in the bucket. A claim that runs out (its node died)
-- lets any node claim the job and make them again from the sessions' recordings in the bucket.
CREATE TABLE recording_jobs (
    stream_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES streams(id) ON DELETE CASCADE,
    node_id       TEXT COLLATE "C" NOT NULL,
    claimed_until TEXT COLLATE "C" NOT NULL
);
CREATE INDEX recording_jobs_by_claim ON recording_jobs (claimed_until);
