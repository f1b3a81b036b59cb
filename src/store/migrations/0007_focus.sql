-- The product a live stream had in focus, as it changed: stamped with the stream's media time (the
-- recording's timeline) and the matching PROGRAM-DATE-TIME. The product's title and price are kept
-- as they were shown, so chapters and clips read the same after the catalog changes.
CREATE TABLE focus_events (
    stream_id         TEXT NOT NULL REFERENCES streams(id),
    seq               INTEGER NOT NULL,  -- 1, 2, … per stream; the DATERANGE id is focus-{seq}
    product_id        TEXT,              -- NULL: the focus was cleared
    title             TEXT,
    price             TEXT,
    currency          TEXT,
    media_ms          INTEGER NOT NULL,
    program_date_time TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    PRIMARY KEY (stream_id, seq)
);
