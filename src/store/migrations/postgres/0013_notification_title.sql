-- PostgreSQL twin of ../0013_notification_title.sql.
-- A notification keeps the title the stream had when it was made (a rename while back in
-- practice must not reach followers). Older rows have none and show the stream's title.
ALTER TABLE notifications ADD COLUMN title TEXT COLLATE "C";
