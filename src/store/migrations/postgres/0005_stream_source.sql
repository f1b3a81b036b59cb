-- PostgreSQL twin of ../0005_stream_source.sql.
-- Streams that livefront pulls from an RTSP source (IP cameras) instead of waiting for a publisher.
-- The URL is stored whole (the puller needs the camera's credentials); the API never returns the
-- password and the logs never show the userinfo.
CREATE TABLE stream_sources (
    stream_id TEXT COLLATE "C" PRIMARY KEY REFERENCES streams(id),
    url       TEXT COLLATE "C" NOT NULL,
    transport TEXT COLLATE "C" NOT NULL CHECK (transport IN ('tcp', 'udp'))
);
