//! Viewers, their tokens, who follows whom, and the notifications followers get.
use super::db::{Dialect, OptionalExtension, params};
use chrono::{DateTime, Utc};

use super::{Error, Store, corrupt, generate_token, hash_token, parse_ts, ts};
use crate::store::model::{Announcement, CreatorId, Notification, StreamId, Viewer, ViewerId};

impl Store {
    /// Registers a viewer and issues its token (returned once, stored hashed).
    pub async fn create_viewer(&self, handle: &str) -> Result<(Viewer, String), Error> {
        let viewer = Viewer {
            id: ViewerId::generate(),
            handle: handle.to_string(),
            created_at: Utc::now(),
        };
        let token = generate_token();
        let (v, hash) = (viewer.clone(), hash_token(&token));
        self.call(move |c| {
            let tx = c.transaction()?;
            let inserted = tx.execute(
                "INSERT INTO viewers (id, handle, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(handle) DO NOTHING",
                params![v.id.0, v.handle, ts(v.created_at)],
            )?;
            if inserted == 0 {
                return Err(Error::HandleTaken(v.handle));
            }
            tx.execute(
                "INSERT INTO tokens (hash, role, viewer_id, created_at) VALUES (?1, 'viewer', ?2, ?3)",
                params![hash, v.id.0, ts(Utc::now())],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        Ok((viewer, token))
    }

    /// Revokes one token; false when it was not known.
    pub async fn revoke_token(&self, token: &str) -> Result<bool, Error> {
        let hash = hash_token(token);
        self.call(move |c| Ok(c.execute("DELETE FROM tokens WHERE hash = ?1", [hash])? > 0))
            .await
    }

    pub async fn creator_by_handle(&self, handle: &str) -> Result<Option<CreatorId>, Error> {
        let handle = handle.to_string();
        self.read(move |c| {
            Ok(
                c.query_row("SELECT id FROM creators WHERE handle = ?1", [handle], |r| {
                    r.get(0)
                })
                .optional()?
                .map(CreatorId),
            )
        })
        .await
    }

    /// Follows; true when it is new.
    pub async fn follow(&self, viewer: &ViewerId, creator: &CreatorId) -> Result<bool, Error> {
        let (v, cr) = (viewer.clone(), creator.clone());
        self.call(move |c| {
            Ok(c.execute(
                "INSERT INTO follows (viewer_id, creator_id, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT DO NOTHING",
                params![v.0, cr.0, ts(Utc::now())],
            )? > 0)
        })
        .await
    }

    pub async fn unfollow(&self, viewer: &ViewerId, creator: &CreatorId) -> Result<bool, Error> {
        let (v, cr) = (viewer.clone(), creator.clone());
        self.call(move |c| {
            Ok(c.execute(
                "DELETE FROM follows WHERE viewer_id = ?1 AND creator_id = ?2",
                params![v.0, cr.0],
            )? > 0)
        })
        .await
    }

    /// Whether the viewer follows the creator.
    pub async fn follows(&self, viewer: &ViewerId, creator: &CreatorId) -> Result<bool, Error> {
        let (v, cr) = (viewer.clone(), creator.clone());
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT EXISTS(SELECT 1 FROM follows WHERE viewer_id = ?1 AND creator_id = ?2)",
                params![v.0, cr.0],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// How many of the viewer's notifications are unread (as the feed lists them).
    pub async fn unread_count(&self, viewer: &ViewerId) -> Result<u64, Error> {
        let v = viewer.clone();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM notifications WHERE viewer_id = ?1 AND read_at IS NULL \
                 AND stream_id NOT IN (SELECT stream_id FROM takedowns)",
                [v.0],
                |r| r.get::<_, i64>(0),
            )?
            .max(0) as u64)
        })
        .await
    }

    pub async fn follower_count(&self, creator: &CreatorId) -> Result<u64, Error> {
        let cr = creator.clone();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM follows WHERE creator_id = ?1",
                [cr.0],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// The creators a viewer follows: (handle, since), newest first.
    pub async fn following(
        &self,
        viewer: &ViewerId,
    ) -> Result<Vec<(String, DateTime<Utc>)>, Error> {
        let v = viewer.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT creators.handle, follows.created_at FROM follows \
                 JOIN creators ON creators.id = follows.creator_id \
                 WHERE follows.viewer_id = ?1 ORDER BY follows.created_at DESC",
            )?;
            let rows = stmt.query_map([v.0], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    parse_ts(Some(r.get(1)?))?.ok_or_else(|| corrupt("created_at"))?,
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Announces `kind` for a stream to its creator's followers, once per stream and kind: the
    /// first call writes one notification per follower and returns the viewers told; later calls
    /// (a practice/public flap, a reconnect) return nothing.
    pub async fn announce(
        &self,
        stream: &StreamId,
        kind: Announcement,
    ) -> Result<Vec<(ViewerId, Notification)>, Error> {
        let stream = stream.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            let now = Utc::now();
            let first = tx.execute(
                "INSERT INTO stream_announcements (stream_id, kind, at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT DO NOTHING",
                params![stream.0, kind.as_str(), ts(now)],
            )? > 0;
            if !first {
                return Ok(Vec::new());
            }
            tx.execute(
                "INSERT INTO notifications (viewer_id, kind, stream_id, created_at, title) \
                 SELECT follows.viewer_id, ?2, streams.id, ?3, streams.title FROM streams \
                 JOIN follows ON follows.creator_id = streams.creator_id \
                 WHERE streams.id = ?1 ON CONFLICT DO NOTHING",
                params![stream.0, kind.as_str(), ts(now)],
            )?;
            let told = {
                let mut stmt = tx.prepare(&format!(
                    "{NOTIFICATION_SELECT} WHERE n.stream_id = ?1 AND n.kind = ?2"
                ))?;
                let rows = stmt.query_map(params![stream.0, kind.as_str()], |r| {
                    Ok((ViewerId(r.get(7)?), notification_from_row(r)?))
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            tx.commit()?;
            Ok(told)
        })
        .await
    }

    /// A viewer's notifications, newest first, older than `before` (an id) when given.
    pub async fn notifications(
        &self,
        viewer: &ViewerId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Notification>, Error> {
        let v = viewer.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "{NOTIFICATION_SELECT} WHERE n.viewer_id = ?1 AND n.id < ?2 \
                 AND n.stream_id NOT IN (SELECT stream_id FROM takedowns) ORDER BY n.id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![v.0, before.unwrap_or(i64::MAX), limit],
                notification_from_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Marks a viewer's notifications read (the given ids, or all); returns how many changed.
    pub async fn mark_read(
        &self,
        viewer: &ViewerId,
        ids: Option<Vec<i64>>,
    ) -> Result<usize, Error> {
        let v = viewer.clone();
        self.call(move |c| {
            let now = ts(Utc::now());
            let n = match ids {
                None => c.execute(
                    "UPDATE notifications SET read_at = ?2 WHERE viewer_id = ?1 AND read_at IS NULL",
                    params![v.0, now],
                )?,
                // One statement whatever the count (the API bounds the list).
                Some(ids) => c.execute(
                    &format!(
                        "UPDATE notifications SET read_at = ?3 \
                         WHERE viewer_id = ?1 AND read_at IS NULL AND id IN ({})",
                        match c.dialect() {
                            Dialect::Sqlite => "SELECT value FROM json_each(?2)",
                            Dialect::Postgres =>
                                "SELECT CAST(jsonb_array_elements_text(CAST(?2 AS JSONB)) AS BIGINT)",
                        }
                    ),
                    params![v.0, serde_json::to_string(&ids).unwrap_or_default(), now],
                )?,
            };
            Ok(n)
        })
        .await
    }
}

pub(super) const NOTIFICATION_SELECT: &str = "SELECT n.id, n.kind, n.stream_id, COALESCE(n.title, streams.title), creators.handle, \
     n.created_at, n.read_at, n.viewer_id, n.detail FROM notifications n \
     JOIN streams ON streams.id = n.stream_id JOIN creators ON creators.id = streams.creator_id";

pub(super) fn notification_from_row(r: &super::db::Row) -> super::db::Result<Notification> {
    let kind =
        Announcement::parse(&r.get::<_, String>(1)?).ok_or_else(|| corrupt("notification kind"))?;
    let detail = match r.get::<_, Option<String>>(8)? {
        Some(d) => Some(serde_json::from_str(&d).map_err(|_| corrupt("notification detail"))?),
        None => None,
    };
    Ok(Notification {
        id: r.get(0)?,
        kind,
        stream_id: StreamId(r.get(2)?),
        title: r.get(3)?,
        creator: r.get(4)?,
        created_at: parse_ts(Some(r.get(5)?))?.ok_or_else(|| corrupt("created_at"))?,
        read: r.get::<_, Option<String>>(6)?.is_some(),
        detail,
    })
}
