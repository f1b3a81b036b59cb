-- Flash sales and auctions on a live stream (issue 23). Times are RFC 3339 UTC with milliseconds,
-- so that they compare as text.

CREATE TABLE flash_sales (
    id               TEXT PRIMARY KEY,
    stream_id        TEXT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    product_id       TEXT NOT NULL,
    title            TEXT NOT NULL,
    currency         TEXT NOT NULL,
    list_price_minor INTEGER NOT NULL,
    price_minor      INTEGER NOT NULL CHECK (price_minor > 0),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    per_viewer_limit INTEGER NOT NULL CHECK (per_viewer_limit > 0),
    starts_at        TEXT NOT NULL,
    ends_at          TEXT NOT NULL,
    closed_at        TEXT,                    -- closed with its stream before ends_at
    created_at       TEXT NOT NULL,
    starts_pdt       TEXT NOT NULL,           -- starts_at and ends_at on the PROGRAM-DATE-TIME clock
    ends_pdt         TEXT NOT NULL
);
CREATE INDEX flash_sales_stream ON flash_sales(stream_id);

-- A claim reserves one unit until the shop confirms it (confirmed) or expires_at passes (it then
-- counts no more, whatever its state says until it is marked expired).
CREATE TABLE flash_sale_claims (
    id           TEXT PRIMARY KEY,            -- the reservation id the shop confirms
    sale_id      TEXT NOT NULL REFERENCES flash_sales(id) ON DELETE CASCADE,
    viewer_id    TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('reserved', 'confirmed', 'expired')),
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    confirmed_at TEXT,
    order_id     TEXT
);
CREATE INDEX flash_sale_claims_sale ON flash_sale_claims(sale_id, viewer_id);

CREATE TABLE auctions (
    id             TEXT PRIMARY KEY,
    stream_id      TEXT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    product_id     TEXT NOT NULL,
    title          TEXT NOT NULL,
    currency       TEXT NOT NULL,
    rules          TEXT NOT NULL,             -- auction::Rules as JSON
    closed_at      TEXT,                      -- set when it ended (by its timer or its stream)
    winner_handle  TEXT,
    winner_viewer  TEXT,
    amount_minor   INTEGER,
    created_at     TEXT NOT NULL
);
CREATE INDEX auctions_stream ON auctions(stream_id);

-- Every accepted bid in server arrival order: the auction's result is a replay of this log.
CREATE TABLE auction_bids (
    auction_id TEXT NOT NULL REFERENCES auctions(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    bid        TEXT NOT NULL,                 -- auction::Bid as JSON
    PRIMARY KEY (auction_id, seq)
);
