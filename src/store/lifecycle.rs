//! Editing, listing and deleting streams, and rotating their keys.
use super::db::params;
use chrono::{DateTime, Utc};

use super::StreamKey;
use super::{Error, STREAM_COLUMNS, Store, parsed_rows, stream_from_row, ts};
use crate::store::model::{CreatorId, Stream, StreamId, StreamState};

/// Changes to a stream; `None` leaves a field as it is (`Some(None)` clears a nullable one).
#[derive(Debug, Default, Clone)]
pub struct StreamEdit {
    pub title: Option<String>,
    pub category: Option<Option<String>>,
    pub scheduled_at: Option<Option<DateTime<Utc>>>,
}

impl Store {
    /// A creator's streams (all of them when `creator` is `None`), newest first.
    pub async fn streams_of(
        &self,
        creator: Option<&CreatorId>,
        state: Option<StreamState>,
    ) -> Result<Vec<Stream>, Error> {
        let creator = creator.map(|c| c.0.clone());
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {STREAM_COLUMNS} FROM streams \
                 WHERE (CAST(?1 AS TEXT) IS NULL OR creator_id = ?1) \
                   AND (CAST(?2 AS TEXT) IS NULL OR state = ?2) \
                 ORDER BY created_at DESC"
            ))?;
            let rows =
                stmt.query_map(params![creator, state.map(|s| s.as_str())], stream_from_row)?;
            Ok(parsed_rows("stream", rows)?)
        })
        .await
    }

    /// Applies `edit` unless the stream has ended; false when it has (or does not exist).
    pub async fn edit_stream(&self, id: &StreamId, edit: StreamEdit) -> Result<bool, Error> {
        let id = id.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            let editable: bool = tx.query_row(
                "SELECT COUNT(*) FROM streams WHERE id = ?1 AND state != 'ended'",
                [&id.0],
                |r| r.get::<_, i64>(0),
            )? > 0;
            if editable {
                if let Some(title) = edit.title {
                    tx.execute(
                        "UPDATE streams SET title = ?2 WHERE id = ?1",
                        params![id.0, title],
                    )?;
                }
                if let Some(category) = edit.category {
                    tx.execute(
                        "UPDATE streams SET category = ?2 WHERE id = ?1",
                        params![id.0, category],
                    )?;
                }
                if let Some(at) = edit.scheduled_at {
                    tx.execute(
                        "UPDATE streams SET scheduled_at = ?2 WHERE id = ?1",
                        params![id.0, at.map(ts)],
                    )?;
                }
                tx.commit()?;
            }
            Ok(editable)
        })
        .await
    }

    /// Deletes a stream that never went live, with what refers to it; false otherwise.
    pub async fn delete_unused_stream(&self, id: &StreamId) -> Result<bool, Error> {
        let id = id.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            let unused: bool = tx.query_row(
                "SELECT COUNT(*) FROM streams WHERE id = ?1 AND state = 'ready' AND started_at IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM commissions WHERE stream_id = ?1)",
                [&id.0],
                |r| r.get::<_, i64>(0),
            )? > 0;
            if !unused {
                return Ok(false);
            }
            tx.execute(
                "DELETE FROM promo_redemptions WHERE promo_id IN (SELECT id FROM promos WHERE stream_id = ?1)",
                [&id.0],
            )?;
            for table in [
                "promos",
                "notifications",
                "stream_announcements",
                "recordings",
                "stream_sources",
                "stream_products",
                "focus_events",
                "clips",
                "clicks",
                "attribution_sessions",
                "share_links",
                "public_intervals",
                "public_replays",
                "reminders",
                "cart_adds",
            ] {
                tx.execute(&format!("DELETE FROM {table} WHERE stream_id = ?1"), [&id.0])?;
            }
            tx.execute("DELETE FROM streams WHERE id = ?1", [&id.0])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// Gives a stream that has not ended a new key (the old one stops working for new publishes).
    pub async fn rotate_key(&self, id: &StreamId) -> Result<Option<StreamKey>, Error> {
        let (id, key) = (id.clone(), StreamKey::generate());
        self.call(move |c| {
            let n = c.execute(
                "UPDATE streams SET stream_key = ?2 WHERE id = ?1 AND state != 'ended'",
                params![id.0, key.expose()],
            )?;
            Ok((n > 0).then_some(key))
        })
        .await
    }

    /// How many streams are in each (state, mode): counts only, for metrics.
    pub async fn stream_counts(&self) -> Result<Vec<(String, String, u64)>, Error> {
        self.read(|c| {
            let mut stmt =
                c.prepare("SELECT state, mode, COUNT(*) FROM streams GROUP BY state, mode")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
