-- PostgreSQL twin of ../0007_focus.sql.
-- The product a live stream had in focus, as it changed: stamped with the stream's media time (the
-- recording's timeline) and the matching PROGRAM-DATE-TIME. The product's title and price are kept
-- as they were shown, so chapters and clips read the same after the catalog changes.
CREATE TABLE focus_events (
    stream_id         TEXT COLLATE "C" NOT NULL REFERENCES streams(id),
    seq               BIGINT NOT NULL,           -- 1, 2, … per stream; the DATERANGE id is focus-{seq}
    product_id        TEXT COLLATE "C",          -- NULL: the focus was cleared
    title             TEXT COLLATE "C",
    price             TEXT COLLATE "C",
    currency          TEXT COLLATE "C",
    media_ms          BIGINT NOT NULL,
    program_date_time TEXT COLLATE "C" NOT NULL,
    created_at        TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (stream_id, seq)
);
