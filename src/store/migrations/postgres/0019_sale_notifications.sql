-- PostgreSQL twin of ../0019_sale_notifications.sql. SQLite rebuilds `notifications` to widen the
-- CHECK on kind and the UNIQUE; here both are replaced in place, and the new column `subject`
-- gets '' on every existing row from its default, as SQLite's copy (which leaves it out) does.
-- Commerce follow-ups (issue 23): when a flash sale sold out (its marker ends there), and
-- notifications for one viewer about one sale: the auction they won, the unit they claimed.

-- Set once, when a claim took the last unit; the PROGRAM-DATE-TIME of the picture then.
ALTER TABLE flash_sales ADD COLUMN sold_out_at TEXT COLLATE "C";
ALTER TABLE flash_sales ADD COLUMN sold_out_pdt TEXT COLLATE "C";

-- Notifications gain the kinds 'auction_won' and 'flash_sale_claimed', what they are about
-- (`subject`: the auction or reservation id; '' for the stream announcements, which stay one per
-- viewer, stream and kind) and their details (JSON).
ALTER TABLE notifications ADD COLUMN subject TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN detail TEXT COLLATE "C";
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('live', 'upcoming', 'reminder', 'auction_won', 'flash_sale_claimed'));
ALTER TABLE notifications DROP CONSTRAINT notifications_once;
ALTER TABLE notifications ADD CONSTRAINT notifications_once UNIQUE (viewer_id, stream_id, kind, subject);
