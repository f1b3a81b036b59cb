-- PostgreSQL twin of ../0017_sales.sql.
-- Flash sales and auctions on a live stream (issue 23). Times are RFC 3339 UTC with milliseconds,
-- so that they compare as text (byte order: COLLATE "C").

CREATE TABLE flash_sales (
    id               TEXT COLLATE "C" PRIMARY KEY,
    stream_id        TEXT COLLATE "C" NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    product_id       TEXT COLLATE "C" NOT NULL,
    title            TEXT COLLATE "C" NOT NULL,
    currency         TEXT COLLATE "C" NOT NULL,
    list_price_minor BIGINT NOT NULL,
    price_minor      BIGINT NOT NULL CHECK (price_minor > 0),
    quantity         BIGINT NOT NULL CHECK (quantity > 0),
    per_viewer_limit BIGINT NOT NULL CHECK (per_viewer_limit > 0),
    starts_at        TEXT COLLATE "C" NOT NULL,
    ends_at          TEXT COLLATE "C" NOT NULL,
    closed_at        TEXT COLLATE "C",        -- closed with its stream before ends_at
    created_at       TEXT COLLATE "C" NOT NULL,
    starts_pdt       TEXT COLLATE "C" NOT NULL,  -- starts_at and ends_at on the PROGRAM-DATE-TIME clock
    ends_pdt         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX flash_sales_stream ON flash_sales(stream_id);

-- A claim reserves one unit until the shop confirms it (confirmed) or expires_at passes (it then
-- counts no more, whatever its state says until it is marked expired).
CREATE TABLE flash_sale_claims (
    id           TEXT COLLATE "C" PRIMARY KEY,  -- the reservation id the shop confirms
    sale_id      TEXT COLLATE "C" NOT NULL REFERENCES flash_sales(id) ON DELETE CASCADE,
    viewer_id    TEXT COLLATE "C" NOT NULL,
    state        TEXT COLLATE "C" NOT NULL CHECK (state IN ('reserved', 'confirmed', 'expired')),
    created_at   TEXT COLLATE "C" NOT NULL,
    expires_at   TEXT COLLATE "C" NOT NULL,
    confirmed_at TEXT COLLATE "C",
    order_id     TEXT COLLATE "C"
);
CREATE INDEX flash_sale_claims_sale ON flash_sale_claims(sale_id, viewer_id);

CREATE TABLE auctions (
    id             TEXT COLLATE "C" PRIMARY KEY,
    stream_id      TEXT COLLATE "C" NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    product_id     TEXT COLLATE "C" NOT NULL,
    title          TEXT COLLATE "C" NOT NULL,
    currency       TEXT COLLATE "C" NOT NULL,
    rules          TEXT COLLATE "C" NOT NULL,  -- auction::Rules as JSON
    closed_at      TEXT COLLATE "C",           -- set when it ended (by its timer or its stream)
    winner_handle  TEXT COLLATE "C",
    winner_viewer  TEXT COLLATE "C",
    amount_minor   BIGINT,
    created_at     TEXT COLLATE "C" NOT NULL
);
CREATE INDEX auctions_stream ON auctions(stream_id);

-- Every accepted bid in server arrival order: the auction's result is a replay of this log.
CREATE TABLE auction_bids (
    auction_id TEXT COLLATE "C" NOT NULL REFERENCES auctions(id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    bid        TEXT COLLATE "C" NOT NULL,      -- auction::Bid as JSON
    PRIMARY KEY (auction_id, seq)
);
