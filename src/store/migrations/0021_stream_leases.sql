-- Issue 19: which node owns a live stream. A lease runs until `expires_at` unless its node renews
-- it; `fence` grows with every new holder, and the owner's writes about the stream carry it, so a
-- node that lost the lease (a zombie) cannot write over the new owner's. `node_url` is how the other
-- nodes reach the holder's HTTP port (they relay viewers' requests for the stream to it).
CREATE TABLE stream_leases (
    stream_id  TEXT PRIMARY KEY REFERENCES streams(id) ON DELETE CASCADE,
    node_id    TEXT NOT NULL,
    node_url   TEXT,
    fence      INTEGER NOT NULL,
    expires_at TEXT NOT NULL
);
