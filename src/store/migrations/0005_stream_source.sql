-- Streams that livefront pulls from an RTSP source (IP cameras) instead of waiting for a publisher.
-- The URL is stored whole (the puller needs the camera's credentials); the API never returns the
-- password and the logs never show the userinfo.
CREATE TABLE stream_sources (
    stream_id TEXT PRIMARY KEY REFERENCES streams(id),
    url       TEXT NOT NULL,
    transport TEXT NOT NULL CHECK (transport IN ('tcp', 'udp'))
);
