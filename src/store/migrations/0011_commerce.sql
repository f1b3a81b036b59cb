-- Commerce (issue 7): associate tags, share links, attribution sessions, click-outs, purchases and
-- the commission ledger; and the time each stream spent public while live (creator levels).

-- A creator's associate tag (added to product click-outs as ?tag=…), unique over creators.
CREATE TABLE associate_tags (
    creator_id TEXT PRIMARY KEY REFERENCES creators(id),
    tag        TEXT NOT NULL UNIQUE,
    updated_at TEXT NOT NULL
);

-- Short share links /s/{code}, bound to a stream and the tag its creator had when making it.
CREATE TABLE share_links (
    code       TEXT PRIMARY KEY,
    creator_id TEXT NOT NULL REFERENCES creators(id),
    stream_id  TEXT NOT NULL REFERENCES streams(id),
    tag        TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX share_links_stream ON share_links(stream_id);

-- Started by following a share link (the id is the cookie's value).
CREATE TABLE attribution_sessions (
    id         TEXT PRIMARY KEY,
    creator_id TEXT NOT NULL REFERENCES creators(id),
    stream_id  TEXT NOT NULL REFERENCES streams(id),
    link_code  TEXT NOT NULL REFERENCES share_links(code),
    created_at TEXT NOT NULL
);

-- Product click-outs /go/{stream}/{product}: the session (if any) and the product in focus then.
CREATE TABLE clicks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id        TEXT NOT NULL REFERENCES streams(id),
    product_id       TEXT NOT NULL,
    session_id       TEXT,
    focus_product_id TEXT,
    at               TEXT NOT NULL
);
CREATE INDEX clicks_stream ON clicks(stream_id, at);

-- One row per reported order (idempotency by order_id); result is the JSON answered the first time.
CREATE TABLE purchases (
    order_id    TEXT PRIMARY KEY,
    request     TEXT NOT NULL,          -- the order as parsed, re-serialised (to tell a replay from a clash)
    creator_id  TEXT,                   -- NULL: not attributed
    stream_id   TEXT,
    session_id  TEXT,
    at          TEXT NOT NULL,          -- when the shop says the order was placed
    received_at TEXT NOT NULL,
    result      TEXT NOT NULL
);
CREATE INDEX purchases_creator ON purchases(creator_id, at);

-- The ledger: one entry per attributed order line. Money in integer minor units of `currency`.
CREATE TABLE commissions (
    order_id         TEXT NOT NULL REFERENCES purchases(order_id),
    line             INTEGER NOT NULL,
    creator_id       TEXT NOT NULL REFERENCES creators(id),
    stream_id        TEXT NOT NULL REFERENCES streams(id),
    product_id       TEXT NOT NULL,
    category         TEXT,                -- the product's category when sold; NULL: none / unknown product
    currency         TEXT NOT NULL,
    amount_minor     INTEGER NOT NULL,
    rate             TEXT NOT NULL,       -- decimal string, e.g. "0.04"
    commission_minor INTEGER NOT NULL,
    at               TEXT NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE INDEX commissions_creator ON commissions(creator_id, at);

-- When a stream was public while live: opened when it goes live public or flips to public while
-- live, closed when it flips to practice or stops being live. Practice time is never here.
CREATE TABLE public_intervals (
    stream_id  TEXT NOT NULL REFERENCES streams(id),
    started_at TEXT NOT NULL,
    ended_at   TEXT,                      -- NULL while open
    PRIMARY KEY (stream_id, started_at)
);
CREATE INDEX public_intervals_open ON public_intervals(stream_id) WHERE ended_at IS NULL;
