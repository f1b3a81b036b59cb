-- PostgreSQL twin of ../0002_stream_ladder.sql.
-- The ladder preset a creator picked for a stream; NULL means the server's configured default.
ALTER TABLE streams ADD COLUMN ladder TEXT COLLATE "C";
