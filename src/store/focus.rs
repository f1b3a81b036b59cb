//! The focus timeline of a stream (which product the host showed, from which media time), the
//! chapters it makes of the recording, and the clips cut from those.
use super::db::{Row, params};
use chrono::{DateTime, Utc};

use super::{Error, Store, corrupt, parse_ts, ts};
use crate::store::model::{Product, ProductId, StreamId};

/// One focus change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FocusEvent {
    /// 1, 2, … in the stream.
    pub seq: u32,
    /// The product as it was shown; `None` when the focus was cleared.
    pub product: Option<FocusedProduct>,
    /// Media time of the stream (ms since its first frame; the recording's timeline).
    pub media_ms: u64,
    pub program_date_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// What a focus change showed of a product.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FocusedProduct {
    pub id: ProductId,
    pub title: String,
    pub price: String,
    pub currency: String,
}

impl From<&Product> for FocusedProduct {
    fn from(p: &Product) -> Self {
        FocusedProduct {
            id: p.id.clone(),
            title: p.title.clone(),
            price: p.price.clone(),
            currency: p.currency.clone(),
        }
    }
}

impl FocusEvent {
    /// The id of its `EXT-X-DATERANGE`.
    pub fn marker_id(&self) -> String {
        format!("focus-{}", self.seq)
    }
}

const COLUMNS: &str =
    "seq, product_id, title, price, currency, media_ms, program_date_time, created_at";

fn from_row(r: &Row) -> super::db::Result<FocusEvent> {
    let product = match r.get::<_, Option<String>>(1)? {
        Some(id) => Some(FocusedProduct {
            id: ProductId(id),
            title: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            price: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            currency: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(FocusEvent {
        seq: r.get(0)?,
        product,
        media_ms: u64::try_from(r.get::<_, i64>(5)?).map_err(|_| corrupt("media_ms"))?,
        program_date_time: parse_ts(Some(r.get(6)?))?.ok_or_else(|| corrupt("date"))?,
        created_at: parse_ts(Some(r.get(7)?))?.ok_or_else(|| corrupt("created_at"))?,
    })
}

/// One focused product's span of the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Chapter {
    /// The focus change that started it.
    pub seq: u32,
    pub product: FocusedProduct,
    pub start_ms: u64,
    /// `None` while it is still in focus on a live stream.
    pub end_ms: Option<u64>,
}

/// The chapters of a focus timeline: one per focused product, until the next change or `end_ms`
/// (the recording's duration once the stream has ended), never past `end_ms` (a change is stamped
/// with the newest frame ingested, which the recording may end a few frames before).
pub fn chapters(timeline: &[FocusEvent], end_ms: Option<u64>) -> Vec<Chapter> {
    timeline
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let product = e.product.clone()?;
            let end = match (timeline.get(i + 1), end_ms) {
                (Some(next), Some(end)) => Some(next.media_ms.min(end)),
                (Some(next), None) => Some(next.media_ms),
                (None, end) => end,
            };
            Some(Chapter {
                seq: e.seq,
                product,
                start_ms: e.media_ms,
                end_ms: end.map(|end| end.max(e.media_ms)),
            })
        })
        .collect()
}

/// A clip of one chapter and how far its cutting got.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    pub chapter: Chapter,
    pub state: ClipState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClipState {
    Cutting,
    /// What the file covers (its start moved back to a keyframe) and its size.
    Ready {
        start_ms: u64,
        end_ms: u64,
        bytes: u64,
    },
    Failed(String),
}

fn clip_from_row(r: &Row) -> super::db::Result<Clip> {
    let get_u64 = |i: usize| -> super::db::Result<Option<u64>> {
        Ok(r.get::<_, Option<i64>>(i)?
            .and_then(|v| u64::try_from(v).ok()))
    };
    let state = match r.get::<_, String>(9)?.as_str() {
        "cutting" => ClipState::Cutting,
        "ready" => ClipState::Ready {
            start_ms: get_u64(6)?.ok_or_else(|| corrupt("cut_start_ms"))?,
            end_ms: get_u64(7)?.ok_or_else(|| corrupt("cut_end_ms"))?,
            bytes: get_u64(8)?.ok_or_else(|| corrupt("bytes"))?,
        },
        "failed" => ClipState::Failed(r.get::<_, Option<String>>(10)?.unwrap_or_default()),
        _ => return Err(corrupt("clip state")),
    };
    Ok(Clip {
        chapter: Chapter {
            seq: r.get(0)?,
            product: FocusedProduct {
                id: ProductId(r.get(1)?),
                title: r.get(2)?,
                price: String::new(),
                currency: String::new(),
            },
            start_ms: get_u64(3)?.ok_or_else(|| corrupt("start_ms"))?,
            end_ms: get_u64(4)?,
        },
        state,
    })
}

impl Store {
    /// Appends a focus change to the stream's timeline and returns it with its number.
    pub async fn add_focus(
        &self,
        stream: &StreamId,
        product: Option<FocusedProduct>,
        media_ms: u64,
        program_date_time: DateTime<Utc>,
    ) -> Result<FocusEvent, Error> {
        let stream = stream.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            let seq: u32 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM focus_events WHERE stream_id = ?1",
                [&stream.0],
                |r| r.get(0),
            )?;
            let event = FocusEvent {
                seq,
                product,
                media_ms,
                program_date_time,
                created_at: Utc::now(),
            };
            let p = event.product.as_ref();
            tx.execute(
                "INSERT INTO focus_events (stream_id, seq, product_id, title, price, currency, \
                 media_ms, program_date_time, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    stream.0,
                    seq,
                    p.map(|p| &p.id.0),
                    p.map(|p| &p.title),
                    p.map(|p| &p.price),
                    p.map(|p| &p.currency),
                    i64::try_from(media_ms).unwrap_or(i64::MAX),
                    ts(program_date_time),
                    ts(event.created_at),
                ],
            )?;
            tx.commit()?;
            Ok(event)
        })
        .await
    }

    /// The stream's newest focus change, if any (what a node that does not own the live stream
    /// tells a viewer who joins; the owner has it in memory).
    pub async fn current_focus(&self, stream: &StreamId) -> Result<Option<FocusEvent>, Error> {
        let stream = stream.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM focus_events WHERE stream_id = ?1 ORDER BY seq DESC LIMIT 1"
            ))?;
            let mut rows = stmt.query_map([stream.0], from_row)?;
            Ok(rows.next().transpose()?)
        })
        .await
    }

    /// Every focus change of the stream, in order.
    pub async fn focus_timeline(&self, stream: &StreamId) -> Result<Vec<FocusEvent>, Error> {
        let stream = stream.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM focus_events WHERE stream_id = ?1 ORDER BY seq"
            ))?;
            let events = stmt
                .query_map([&stream.0], from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let mut stmt = c.prepare(
                "SELECT started_ms, at_ms FROM recording_sessions WHERE stream_id = ?1 \
                 ORDER BY started_ms",
            )?;
            let sessions = stmt
                .query_map([&stream.0], |r| {
                    Ok(SessionStart {
                        started_ms: r.get(0)?,
                        at_ms: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(on_recording(events, &sessions))
        })
        .await
    }

    /// Where the sessions of the stream's recording start in it (replacing what was said before:
    /// a recording made again says it anew).
    pub async fn set_recording_sessions(
        &self,
        stream: &StreamId,
        sessions: &[SessionStart],
    ) -> Result<(), Error> {
        let (stream, sessions) = (stream.clone(), sessions.to_vec());
        self.call(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM recording_sessions WHERE stream_id = ?1",
                [&stream.0],
            )?;
            for s in &sessions {
                tx.execute(
                    "INSERT INTO recording_sessions (stream_id, started_ms, at_ms) \
                     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![
                        stream.0,
                        s.started_ms,
                        i64::try_from(s.at_ms).unwrap_or(i64::MAX)
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

/// Where a session of a stream's recording starts in it: a stream that went on on another node
/// is one recording of its sessions (see `streams::sessions`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionStart {
    /// When the session started: wall clock, ms since the epoch.
    pub started_ms: i64,
    /// Where it starts in the recording.
    pub at_ms: u64,
}

/// The focus changes on the recording's timeline: each was stamped with the media time of its
/// session, the latest of `sessions` (in the order they started) to start at or before it (the
/// first, for one stamped before any). One stamped past what the recording kept of its session
/// (the last seconds of a node that died) is placed where the next session starts. Without
/// sessions, as stamped.
fn on_recording(mut events: Vec<FocusEvent>, sessions: &[SessionStart]) -> Vec<FocusEvent> {
    for e in &mut events {
        let at = e.program_date_time.timestamp_millis();
        let i = sessions
            .iter()
            .rposition(|s| s.started_ms <= at)
            .unwrap_or(0);
        if let Some(s) = sessions.get(i) {
            let end = sessions.get(i + 1).map_or(u64::MAX, |next| next.at_ms);
            e.media_ms = e.media_ms.saturating_add(s.at_ms).min(end);
        }
    }
    events
}

impl Store {
    /// Records the clips about to be cut (state `cutting`), replacing earlier ones of the stream.
    pub async fn start_clips(&self, stream: &StreamId, chapters: &[Chapter]) -> Result<(), Error> {
        let (stream, chapters) = (stream.clone(), chapters.to_vec());
        self.call(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM clips WHERE stream_id = ?1", [&stream.0])?;
            for ch in &chapters {
                tx.execute(
                    "INSERT INTO clips (stream_id, seq, product_id, title, start_ms, end_ms, state) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'cutting')",
                    params![
                        stream.0,
                        ch.seq,
                        ch.product.id.0,
                        ch.product.title,
                        i64::try_from(ch.start_ms).unwrap_or(i64::MAX),
                        i64::try_from(ch.end_ms.unwrap_or(ch.start_ms)).unwrap_or(i64::MAX),
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// How cutting clip `seq` of the stream ended.
    pub async fn finish_clip(
        &self,
        stream: &StreamId,
        seq: u32,
        state: ClipState,
    ) -> Result<(), Error> {
        let stream = stream.clone();
        self.call(move |c| {
            let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            match state {
                ClipState::Cutting => c.execute(
                    "UPDATE clips SET state = 'cutting' WHERE stream_id = ?1 AND seq = ?2",
                    params![stream.0, seq],
                )?,
                ClipState::Ready { start_ms, end_ms, bytes } => c.execute(
                    "UPDATE clips SET state = 'ready', cut_start_ms = ?3, cut_end_ms = ?4, bytes = ?5, \
                     error = NULL WHERE stream_id = ?1 AND seq = ?2",
                    params![stream.0, seq, as_i64(start_ms), as_i64(end_ms), as_i64(bytes)],
                )?,
                ClipState::Failed(error) => c.execute(
                    "UPDATE clips SET state = 'failed', error = ?3 WHERE stream_id = ?1 AND seq = ?2",
                    params![stream.0, seq, error],
                )?,
            };
            Ok(())
        })
        .await
    }

    /// The stream's clips, in timeline order.
    pub async fn clips(&self, stream: &StreamId) -> Result<Vec<Clip>, Error> {
        let stream = stream.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT seq, product_id, title, start_ms, end_ms, NULL, cut_start_ms, cut_end_ms, \
                 bytes, state, error FROM clips WHERE stream_id = ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map([stream.0], clip_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;
    use crate::store::testing::store_with_stream;

    async fn media_times(store: &Store, stream: &StreamId) -> Vec<u64> {
        let timeline = store.focus_timeline(stream).await.unwrap();
        timeline.iter().map(|e| e.media_ms).collect()
    }

    on_both_backends! {
        async fn focus_changes_land_where_their_session_starts_in_the_recording() {
            let (_d, store, s) = store_with_stream("alice").await;
            let at = |ms: i64| DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap();
            let product = |id: &str| FocusedProduct {
                id: ProductId(id.into()),
                title: id.into(),
                price: "1.00".into(),
                currency: "EUR".into(),
            };
            // Session one from 0 (B's), session two from 20 s of wall time (A's, after B died),
            // both stamped with their own media time.
            store.add_focus(&s.id, Some(product("lip")), 3_000, at(3_000)).await.unwrap();
            // (In session one's last seconds, which its node took with it when it died.)
            store.add_focus(&s.id, Some(product("gloss")), 15_000, at(15_000)).await.unwrap();
            store.add_focus(&s.id, None, 2_000, at(22_000)).await.unwrap();
            let stamped = media_times(&store, &s.id).await;
            assert_eq!(stamped, [3_000, 15_000, 2_000], "one session: as stamped");
            let sessions = |started: i64, at_ms| SessionStart {
                started_ms: 1_800_000_000_000 + started,
                at_ms,
            };
            // The join measured the second session at 12.5 s of the recording (B's last
            // seconds died with it).
            let two = [sessions(0, 0), sessions(20_000, 12_500)];
            store.set_recording_sessions(&s.id, &two).await.unwrap();
            let timeline = store.focus_timeline(&s.id).await.unwrap();
            let placed: Vec<u64> = timeline.iter().map(|e| e.media_ms).collect();
            assert_eq!(placed, [3_000, 12_500, 14_500]);
            let chapters = chapters(&timeline, Some(20_000));
            let spans: Vec<_> = chapters.iter().map(|c| (c.start_ms, c.end_ms)).collect();
            assert_eq!(spans, [(3_000, Some(12_500)), (12_500, Some(14_500))]);
            // Never past the recording's end.
            let short: Vec<_> = super::chapters(&timeline, Some(14_000))
                .iter()
                .map(|c| c.end_ms)
                .collect();
            assert_eq!(short, [Some(12_500), Some(14_000)]);
            // Made again: said anew, not added to.
            store.set_recording_sessions(&s.id, &two).await.unwrap();
            assert_eq!(media_times(&store, &s.id).await, placed);
            store.set_recording_sessions(&s.id, &[]).await.unwrap();
            assert_eq!(media_times(&store, &s.id).await, stamped);
        }
    }
}
