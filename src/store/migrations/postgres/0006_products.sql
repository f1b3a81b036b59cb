-- PostgreSQL twin of ../0006_products.sql.
-- A creator's product catalog and each stream's carousel (ordered).
CREATE TABLE products (
    id         TEXT COLLATE "C" PRIMARY KEY,
    creator_id TEXT COLLATE "C" NOT NULL REFERENCES creators(id),
    sku        TEXT COLLATE "C" NOT NULL,
    title      TEXT COLLATE "C" NOT NULL,
    price      TEXT COLLATE "C" NOT NULL,          -- decimal string, e.g. "19.99"
    currency   TEXT COLLATE "C" NOT NULL,          -- ISO 4217, e.g. "EUR"
    image_url  TEXT COLLATE "C",
    url        TEXT COLLATE "C",
    category   TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL,
    UNIQUE (creator_id, sku)
);

CREATE TABLE stream_products (
    stream_id  TEXT COLLATE "C" NOT NULL REFERENCES streams(id),
    product_id TEXT COLLATE "C" NOT NULL REFERENCES products(id),
    position   BIGINT NOT NULL,
    PRIMARY KEY (stream_id, product_id)
);
CREATE INDEX stream_products_order ON stream_products(stream_id, position);
