-- PostgreSQL twin of ../0016_destinations.sql (BLOB: BYTEA; the 0/1 flag enabled: BIGINT).
-- Simulcast (issue 21): a creator's destinations (RTMP, RTMPS or SRT ingest points of other
-- platforms), reusable across streams, and which of them each stream sends to while public.
-- The stream key is sealed (ChaCha20-Poly1305 under the server's simulcast key, which is not in
-- this database); only its last four characters are kept in the clear, to show.
CREATE TABLE destinations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    creator_id  TEXT COLLATE "C" NOT NULL REFERENCES creators(id),
    name        TEXT COLLATE "C" NOT NULL,
    url         TEXT COLLATE "C" NOT NULL,
    key_sealed  BYTEA,                      -- nonce || ciphertext+tag; NULL: no key
    key_last4   TEXT COLLATE "C",
    enabled     BIGINT NOT NULL DEFAULT 1,
    rendition   TEXT COLLATE "C",           -- a ladder rung to send instead of the source
    created_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX destinations_creator ON destinations(creator_id);

CREATE TABLE stream_destinations (
    stream_id      TEXT COLLATE "C" NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    destination_id TEXT COLLATE "C" NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
    PRIMARY KEY (stream_id, destination_id)
);
