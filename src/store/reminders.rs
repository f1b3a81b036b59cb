//! "Remind me": a viewer's reminders of upcoming streams, and sending them once the stream's
//! scheduled time comes (once each, whatever restarts happen in between).
use super::db::{OptionalExtension, params};
use chrono::{DateTime, Utc};

use super::social::{NOTIFICATION_SELECT, notification_from_row};
use super::{Error, Store, parse_ts, ts};
use crate::store::model::{Notification, StreamId, ViewerId};

/// What asking for a reminder did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderAdded {
    New,
    /// The viewer had asked before.
    Existing,
    /// The viewer has this many pending reminders already.
    TooMany,
}

/// Streams a reminder may fire for: public, not taken down. (Practice streams keep theirs until
/// they are made public; ended ones drop them.)
const FIRABLE: &str = "s.mode = 'public' AND s.state != 'ended' \
     AND s.id NOT IN (SELECT stream_id FROM takedowns) AND s.scheduled_at IS NOT NULL";

impl Store {
    /// Adds a reminder unless the viewer has `max_pending` pending ones already.
    pub async fn add_reminder(
        &self,
        viewer: &ViewerId,
        stream: &StreamId,
        max_pending: u32,
    ) -> Result<ReminderAdded, Error> {
        let (v, s) = (viewer.clone(), stream.clone());
        self.call(move |c| {
            let tx = c.transaction()?;
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM reminders WHERE viewer_id = ?1 AND stream_id = ?2)",
                params![v.0, s.0],
                |r| r.get(0),
            )?;
            if exists {
                return Ok(ReminderAdded::Existing);
            }
            let pending: u32 = tx.query_row(
                "SELECT COUNT(*) FROM reminders WHERE viewer_id = ?1 AND fired_at IS NULL",
                [&v.0],
                |r| r.get(0),
            )?;
            if pending >= max_pending {
                return Ok(ReminderAdded::TooMany);
            }
            tx.execute(
                "INSERT INTO reminders (viewer_id, stream_id, created_at) VALUES (?1, ?2, ?3)",
                params![v.0, s.0, ts(Utc::now())],
            )?;
            tx.commit()?;
            Ok(ReminderAdded::New)
        })
        .await
    }

    /// Removes a reminder that has not fired; false when there was none.
    pub async fn remove_reminder(
        &self,
        viewer: &ViewerId,
        stream: &StreamId,
    ) -> Result<bool, Error> {
        let (v, s) = (viewer.clone(), stream.clone());
        self.call(move |c| {
            Ok(c.execute(
                "DELETE FROM reminders WHERE viewer_id = ?1 AND stream_id = ?2 AND fired_at IS NULL",
                params![v.0, s.0],
            )? > 0)
        })
        .await
    }

    /// Whether the viewer asked to be reminded of the stream, and when it fired.
    pub async fn reminder(
        &self,
        viewer: &ViewerId,
        stream: &StreamId,
    ) -> Result<Option<Option<DateTime<Utc>>>, Error> {
        let (v, s) = (viewer.clone(), stream.clone());
        self.read(move |c| {
            let fired: Option<Option<String>> = c
                .query_row(
                    "SELECT fired_at FROM reminders WHERE viewer_id = ?1 AND stream_id = ?2",
                    params![v.0, s.0],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(match fired {
                Some(at) => Some(parse_ts(at)?),
                None => None,
            })
        })
        .await
    }

    /// When the next pending reminder that may fire is due: the earliest scheduled time, or now
    /// when a stream with one went live early.
    pub async fn next_reminder_at(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let now = ts(Utc::now());
        self.read(move |c| {
            let at: Option<String> = c.query_row(
                &format!(
                    "SELECT MIN(CASE WHEN s.state = 'live' THEN ?1 ELSE s.scheduled_at END) \
                     FROM reminders r JOIN streams s ON s.id = r.stream_id \
                     WHERE r.fired_at IS NULL AND {FIRABLE}"
                ),
                [now],
                |r| r.get(0),
            )?;
            Ok(parse_ts(at)?)
        })
        .await
    }

    /// Sends up to `limit` reminders that are due at `now` (the scheduled time has come, or the
    /// stream went live before it): one notification each (kind
    /// `reminder`), marked fired in the same transaction, so each fires exactly once. Reminders
    /// of streams that ended are dropped unsent. Returns the notifications made.
    pub async fn fire_due_reminders(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(ViewerId, Notification)>, Error> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let now = ts(now);
            tx.execute(
                "UPDATE reminders SET fired_at = ?1 WHERE fired_at IS NULL \
                 AND stream_id IN (SELECT id FROM streams WHERE state = 'ended')",
                [&now],
            )?;
            let due: Vec<(String, String)> = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT r.viewer_id, r.stream_id FROM reminders r JOIN streams s ON s.id = r.stream_id \
                     WHERE r.fired_at IS NULL AND {FIRABLE} AND (s.scheduled_at <= ?1 OR s.state = 'live') \
                     ORDER BY s.scheduled_at NULLS FIRST, r.created_at LIMIT ?2"
                ))?;
                let rows = stmt.query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            let mut told = Vec::with_capacity(due.len());
            for (viewer, stream) in due {
                tx.execute(
                    "UPDATE reminders SET fired_at = ?3 WHERE viewer_id = ?1 AND stream_id = ?2",
                    params![viewer, stream, now],
                )?;
                let made: Option<i64> = tx
                    .query_row(
                        "INSERT INTO notifications (viewer_id, kind, stream_id, created_at, title) \
                         SELECT ?1, 'reminder', id, ?3, title FROM streams WHERE id = ?2 \
                         ON CONFLICT DO NOTHING RETURNING id",
                        params![viewer, stream, now],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(id) = made {
                    let n = tx.query_row(
                        &format!("{NOTIFICATION_SELECT} WHERE n.id = ?1"),
                        [id],
                        notification_from_row,
                    )?;
                    told.push((ViewerId(viewer), n));
                }
            }
            tx.commit()?;
            Ok(told)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;
    use crate::store::testing::store_with_stream;

    on_both_backends! {
        async fn a_due_reminder_fires_once_and_the_count_is_bounded() {
            let (_dir, store, stream) = store_with_stream("alice").await;
            let stream = stream.id;
            let (viewer, _) = store.create_viewer("vera").await.unwrap();
            assert_eq!(
                store.add_reminder(&viewer.id, &stream, 1).await.unwrap(),
                ReminderAdded::New
            );
            assert_eq!(
                store.add_reminder(&viewer.id, &stream, 1).await.unwrap(),
                ReminderAdded::Existing
            );
            let now = Utc::now();
            assert_eq!(
                store.next_reminder_at().await.unwrap(),
                None,
                "not scheduled"
            );
            store
                .call({
                    let s = stream.clone();
                    move |c| {
                        c.execute(
                            "UPDATE streams SET scheduled_at = ?2 WHERE id = ?1",
                            params![s.0, ts(now)],
                        )?;
                        Ok(())
                    }
                })
                .await
                .unwrap();
            let at = store.next_reminder_at().await.unwrap().unwrap();
            assert_eq!(ts(at), ts(now));
            let before = now - chrono::TimeDelta::seconds(1);
            assert!(
                store
                    .fire_due_reminders(before, 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            let fired = store.fire_due_reminders(now, 10).await.unwrap();
            assert_eq!(fired.len(), 1);
            assert_eq!(fired[0].0, viewer.id);
            assert!(
                store.fire_due_reminders(now, 10).await.unwrap().is_empty(),
                "once"
            );
            assert_eq!(store.next_reminder_at().await.unwrap(), None);
            assert!(
                store
                    .reminder(&viewer.id, &stream)
                    .await
                    .unwrap()
                    .unwrap()
                    .is_some()
            );
            assert!(
                !store.remove_reminder(&viewer.id, &stream).await.unwrap(),
                "fired ones stay"
            );

            // A stream that goes live before its time reminds at once.
            let (_d2, store2, early) = store_with_stream("bob").await;
            let (vic, _) = store2.create_viewer("vic").await.unwrap();
            let later = Utc::now() + chrono::TimeDelta::hours(1);
            store2
                .call({
                    let s = early.id.clone();
                    move |c| {
                        c.execute(
                            "UPDATE streams SET scheduled_at = ?2 WHERE id = ?1",
                            params![s.0, ts(later)],
                        )?;
                        Ok(())
                    }
                })
                .await
                .unwrap();
            store2.add_reminder(&vic.id, &early.id, 10).await.unwrap();
            assert!(
                store2
                    .fire_due_reminders(Utc::now(), 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            store2.mark_live(&early.id).await.unwrap();
            assert!(store2.next_reminder_at().await.unwrap().unwrap() <= Utc::now());
            assert_eq!(
                store2
                    .fire_due_reminders(Utc::now(), 10)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            let (v2, _) = store.create_viewer("walt").await.unwrap();
            assert_eq!(
                store.add_reminder(&v2.id, &stream, 0).await.unwrap(),
                ReminderAdded::TooMany
            );
        }
    }
}
