-- A creator's product catalog and each stream's carousel (ordered).
CREATE TABLE products (
    id         TEXT PRIMARY KEY,
    creator_id TEXT NOT NULL REFERENCES creators(id),
    sku        TEXT NOT NULL,
    title      TEXT NOT NULL,
    price      TEXT NOT NULL,          -- decimal string, e.g. "19.99"
    currency   TEXT NOT NULL,          -- ISO 4217, e.g. "EUR"
    image_url  TEXT,
    url        TEXT,
    category   TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (creator_id, sku)
);

CREATE TABLE stream_products (
    stream_id  TEXT NOT NULL REFERENCES streams(id),
    product_id TEXT NOT NULL REFERENCES products(id),
    position   INTEGER NOT NULL,
    PRIMARY KEY (stream_id, product_id)
);
CREATE INDEX stream_products_order ON stream_products(stream_id, position);
