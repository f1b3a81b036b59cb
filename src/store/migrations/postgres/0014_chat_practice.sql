-- PostgreSQL twin of ../0014_chat_practice.sql (a 0/1 flag: BIGINT).
-- A chat message posted while its stream was practice is part of the rehearsal: only the
-- creator reads it back, also after the stream goes public.
ALTER TABLE chat_messages ADD COLUMN practice BIGINT NOT NULL DEFAULT 0;
