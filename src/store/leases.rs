//! Stream leases (issue 19): one owner node per live stream. A node holds a stream's lease while
//! the stream is live there and renews it every few seconds; a lease nobody renews runs out, and
//! another node may then take the stream. The fence grows with every new holder, and the owner's
//! closing writes carry it, so a node that lost the lease (a zombie) cannot end a stream that
//! lives on elsewhere.
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::db::{Conn, OptionalExtension, params};
use super::{Error, Store, commerce, parse_ts, ts};
use crate::store::model::{Mode, StreamId};

/// A node's hold on a live stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub stream: StreamId,
    pub node: String,
    /// Grows with every new holder: writes that carry an older fence are refused.
    pub fence: i64,
}

/// What renewing a lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Still held; the stream's mode and whether it was ended, as stored (another node may
    /// have changed them: the owner follows).
    Held { mode: Mode, ended: bool },
    /// Another node took the stream after the lease ran out.
    Lost,
}

/// Who holds a stream's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    /// How other nodes reach its HTTP port (`node.url`), if it said.
    pub url: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The caller still holds the lease of the stream `streams.id` (`?3` its node, `?4` its fence).
const HELD: &str = "EXISTS (SELECT 1 FROM stream_leases l \
     WHERE l.stream_id = streams.id AND l.node_id = ?3 AND l.fence = ?4)";

fn holder(c: &Conn, stream: &StreamId) -> super::db::Result<Option<Holder>> {
    let row: Option<(String, Option<String>, String)> = c
        .query_row(
            "SELECT node_id, node_url, expires_at FROM stream_leases WHERE stream_id = ?1",
            [&stream.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    row.map(|(node, url, expires_at)| {
        let expires_at = parse_ts(Some(expires_at))?.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        Ok(Holder {
            node,
            url,
            expires_at,
        })
    })
    .transpose()
}

fn stream_ids(
    rows: impl Iterator<Item = super::db::Result<String>>,
) -> super::db::Result<Vec<StreamId>> {
    rows.map(|id| id.map(StreamId)).collect()
}

fn until(now: DateTime<Utc>, ttl: Duration) -> String {
    ts(now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX))
}

impl Store {
    /// Takes `stream`'s lease for `node` until `now + ttl`: when nobody holds it, its holder let
    /// it run out, or `node` holds it already (a second session of the stream on this node, or a
    /// restart with the same `node.id`: the same fence while the lease runs, so node ids must be
    /// unique). A new holder gets a higher fence. `Err(holder)` when another node holds it.
    pub async fn acquire_lease(
        &self,
        stream: &StreamId,
        (node, url): (&str, Option<&str>),
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Result<Lease, Holder>, Error> {
        let (stream, node, url) = (stream.clone(), node.to_string(), url.map(str::to_string));
        self.call(move |c| {
            let fence: Option<i64> = c
                .query_row(
                    "INSERT INTO stream_leases (stream_id, node_id, fence, expires_at, node_url) \
                     VALUES (?1, ?2, 1, ?3, ?5) \
                     ON CONFLICT (stream_id) DO UPDATE SET node_id = excluded.node_id, \
                       node_url = excluded.node_url, \
                       fence = CASE WHEN stream_leases.node_id = ?2 AND stream_leases.expires_at > ?4 \
                         THEN stream_leases.fence ELSE stream_leases.fence + 1 END, \
                       expires_at = excluded.expires_at \
                     WHERE stream_leases.expires_at <= ?4 OR stream_leases.node_id = ?2 \
                     RETURNING fence",
                    params![stream.0, node, until(now, ttl), ts(now), url],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(fence) = fence {
                return Ok(Ok(Lease {
                    stream,
                    node,
                    fence,
                }));
            }
            let holder = holder(c, &stream)?.ok_or(super::db::Error::NoRows)?;
            Ok(Err(holder))
        })
        .await
    }

    /// The node that holds `stream` live now, if any (its lease runs past `now`).
    pub async fn live_owner(
        &self,
        stream: &StreamId,
        now: DateTime<Utc>,
    ) -> Result<Option<Holder>, Error> {
        let stream = stream.clone();
        self.read(move |c| Ok(holder(c, &stream)?.filter(|h| h.expires_at > now)))
            .await
    }

    /// Streams stored live whose lease ran out before `before`: their node died (or stopped
    /// without a word) and no node took them since. At most `limit`, the longest abandoned first.
    pub async fn abandoned_streams(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StreamId>, Error> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT s.id FROM streams s JOIN stream_leases l ON l.stream_id = s.id \
                 WHERE s.state = 'live' AND l.expires_at <= ?1 ORDER BY l.expires_at LIMIT ?2",
            )?;
            let rows =
                stmt.query_map(params![ts(before), limit as i64], |r| r.get::<_, String>(0))?;
            Ok(stream_ids(rows)?)
        })
        .await
    }

    /// Claims the job of making `stream`'s recording (see the `recording_jobs` migration) for
    /// `node` until `now + ttl`: when there is none, its claim ran out, or `node` has it already.
    /// A conditional write under the store's write lock: of nodes claiming at once, one gets it.
    pub async fn claim_recording_job(
        &self,
        stream: &StreamId,
        node: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let (stream, node) = (stream.clone(), node.to_string());
        self.call(move |c| {
            let claimed = c.execute(
                "INSERT INTO recording_jobs (stream_id, node_id, claimed_until) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (stream_id) DO UPDATE SET node_id = excluded.node_id, \
                   claimed_until = excluded.claimed_until \
                 WHERE recording_jobs.claimed_until <= ?4 OR recording_jobs.node_id = ?2",
                params![stream.0, node, until(now, ttl), ts(now)],
            )?;
            Ok(claimed > 0)
        })
        .await
    }

    /// The recording jobs whose claim ran out before `now` (at most `limit`).
    pub async fn unclaimed_recording_jobs(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StreamId>, Error> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT stream_id FROM recording_jobs WHERE claimed_until <= ?1 \
                 ORDER BY claimed_until LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![ts(now), limit as i64], |r| r.get::<_, String>(0))?;
            Ok(stream_ids(rows)?)
        })
        .await
    }

    /// The job is done (its node's claim only): the row goes.
    pub async fn finish_recording_job(&self, stream: &StreamId, node: &str) -> Result<(), Error> {
        let (stream, node) = (stream.clone(), node.to_string());
        self.call(move |c| {
            c.execute(
                "DELETE FROM recording_jobs WHERE stream_id = ?1 AND node_id = ?2",
                params![stream.0, node],
            )?;
            Ok(())
        })
        .await
    }

    /// Renews `leases` until `now + ttl`, in one write, and tells for each what was found.
    pub async fn renew_leases(
        &self,
        leases: Vec<Lease>,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Lease, Renewal)>, Error> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        self.call(move |c| {
            let tx = c.transaction()?;
            let mut found = Vec::with_capacity(leases.len());
            for lease in leases {
                let renewed = tx.execute(
                    "UPDATE stream_leases SET expires_at = ?4 \
                     WHERE stream_id = ?1 AND node_id = ?2 AND fence = ?3",
                    params![lease.stream.0, lease.node, lease.fence, until(now, ttl)],
                )?;
                let renewal = if renewed == 0 {
                    Renewal::Lost
                } else {
                    let (mode, state): (String, String) = tx.query_row(
                        "SELECT mode, state FROM streams WHERE id = ?1",
                        [&lease.stream.0],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                    Renewal::Held {
                        mode: Mode::parse(&mode).unwrap_or(Mode::Practice),
                        ended: state == "ended",
                    }
                };
                found.push((lease, renewal));
            }
            tx.commit()?;
            Ok(found)
        })
        .await
    }

    /// Lets `lease` run out now (the fence stays, so the next holder's is higher).
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), Error> {
        let lease = lease.clone();
        self.call(move |c| {
            c.execute(
                "UPDATE stream_leases SET expires_at = ?4 \
                 WHERE stream_id = ?1 AND node_id = ?2 AND fence = ?3",
                params![lease.stream.0, lease.node, lease.fence, ts(Utc::now())],
            )?;
            Ok(())
        })
        .await
    }

    /// [`Store::mark_ended`] by the holder of `lease`; false (nothing written) when it no longer
    /// holds it.
    pub async fn mark_ended_by(&self, lease: &Lease) -> Result<bool, Error> {
        self.close_by(lease, "state = 'ended', ended_at = COALESCE(ended_at, ?2)")
            .await
    }

    /// [`Store::mark_ready`] by the holder of `lease`; false when it no longer holds it.
    pub async fn mark_ready_by(&self, lease: &Lease) -> Result<bool, Error> {
        self.close_by(
            lease,
            "state = CASE WHEN state = 'live' THEN 'ready' ELSE state END",
        )
        .await
    }

    async fn close_by(&self, lease: &Lease, set: &'static str) -> Result<bool, Error> {
        let lease = lease.clone();
        self.call(move |c| {
            let changed = c.execute(
                &format!("UPDATE streams SET {set} WHERE id = ?1 AND {HELD}"),
                params![lease.stream.0, ts(Utc::now()), lease.node, lease.fence],
            )?;
            if changed > 0 {
                commerce::sync_public_interval(c, &lease.stream.0)?;
            }
            Ok(changed > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;
    use crate::store::testing::store_with_stream;
    use crate::store::{Mode, StreamState};

    const TTL: Duration = Duration::from_secs(10);

    on_both_backends! {
        async fn one_node_holds_a_stream_and_a_zombie_cannot_end_it() {
            let (_d, store, s) = store_with_stream("alice").await;
            let t0 = Utc::now();
            let a = store.acquire_lease(&s.id, ("a", Some("http://a")), TTL, t0).await.unwrap().unwrap();
            assert_eq!(a.fence, 1);
            // Another node is refused while the lease runs, and told who holds it until when.
            let held = store.acquire_lease(&s.id, ("b", Some("http://b")), TTL, t0).await.unwrap().unwrap_err();
            assert_eq!((held.node.as_str(), held.url.as_deref()), ("a", Some("http://a")));
            assert_eq!(store.live_owner(&s.id, t0).await.unwrap(), Some(held.clone()));
            assert_eq!(store.live_owner(&s.id, held.expires_at).await.unwrap(), None);
            assert!(held.expires_at > t0);
            // Renewing keeps it; the holder itself may take it again with the same fence while
            // it runs (a second session on that node), a new one after it ran out.
            let later = t0 + chrono::Duration::seconds(8);
            let held = Renewal::Held { mode: Mode::Public, ended: false };
            assert_eq!(
                store.renew_leases(vec![a.clone()], TTL, later).await.unwrap(),
                vec![(a.clone(), held)]
            );
            let refused = store.acquire_lease(&s.id, ("b", Some("http://b")), TTL, t0 + chrono::Duration::seconds(12));
            assert!(refused.await.unwrap().is_err(), "renewed until 18 s");
            let again = store.acquire_lease(&s.id, ("a", Some("http://a")), TTL, later).await.unwrap().unwrap();
            assert_eq!(again, a);
            let late = later + chrono::Duration::seconds(11);
            let a2 = store.acquire_lease(&s.id, ("a", Some("http://a")), TTL, late).await.unwrap().unwrap();
            assert_eq!(a2.fence, 2);
            // Once it runs out, b takes it with a higher fence; a's renewal finds it lost.
            let gone = late + chrono::Duration::seconds(11);
            let b = store.acquire_lease(&s.id, ("b", Some("http://b")), TTL, gone).await.unwrap().unwrap();
            assert_eq!(b.fence, 3);
            let lost = store.renew_leases(vec![a2.clone()], TTL, gone).await.unwrap();
            assert_eq!(lost, vec![(a2.clone(), Renewal::Lost)]);
            // The owner reads a mode set and an end stored through another node.
            store.set_mode(&s.id, Mode::Practice).await.unwrap();
            let seen = store.renew_leases(vec![b.clone()], TTL, gone).await.unwrap();
            assert_eq!(seen[0].1, Renewal::Held { mode: Mode::Practice, ended: false });
            store.set_mode(&s.id, Mode::Public).await.unwrap();
            // The zombie's closing writes are refused; the owner's go through.
            store.mark_live(&s.id).await.unwrap();
            assert!(!store.mark_ended_by(&a2).await.unwrap());
            assert!(!store.mark_ready_by(&a).await.unwrap());
            assert_eq!(store.stream(&s.id).await.unwrap().unwrap().state, StreamState::Live);
            assert!(store.mark_ready_by(&b).await.unwrap());
            assert_eq!(store.stream(&s.id).await.unwrap().unwrap().state, StreamState::Ready);
            store.mark_live(&s.id).await.unwrap();
            assert!(store.mark_ended_by(&b).await.unwrap());
            let ended = store.stream(&s.id).await.unwrap().unwrap();
            assert_eq!((ended.mode, ended.state), (Mode::Public, StreamState::Ended));
            // Released: the next holder comes in at once, with a higher fence still.
            store.release_lease(&b).await.unwrap();
            let c = store.acquire_lease(&s.id, ("c", Some("http://c")), TTL, Utc::now()).await.unwrap().unwrap();
            assert_eq!(c.fence, 4);
        }
    }
}
