-- Issue 19: rate limits that hold across nodes sharing one database (sign-up per address, chat
-- per author). One row per counted attempt; rows older than their limit's window are deleted by
-- the next attempt of the same scope.
CREATE TABLE rate_events (
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    at    TEXT NOT NULL
);
CREATE INDEX rate_events_by_key ON rate_events (scope, key, at);
CREATE INDEX rate_events_by_age ON rate_events (scope, at);
