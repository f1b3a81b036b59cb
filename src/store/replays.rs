//! The public replay of each stream: which intervals of the recording were public, and how
//! building the MP4 of them went.
use super::db::{OptionalExtension, params};
use chrono::Utc;

use super::{Error, Store, corrupt, ts};
use crate::store::model::{RecordingState, StreamId};

/// A stream's public replay.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicReplay {
    pub stream_id: StreamId,
    /// `Finalizing` while it is built, then `Ready` or `Failed`.
    pub state: RecordingState,
    /// Public media `[start, end)` in recording milliseconds, in order.
    pub intervals_ms: Vec<(u64, u64)>,
    pub bytes: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
}

impl Store {
    pub async fn set_public_replay(&self, replay: PublicReplay) -> Result<(), Error> {
        self.call(move |c| {
            let intervals =
                serde_json::to_string(&replay.intervals_ms).expect("intervals serialise");
            c.execute(
                "INSERT INTO public_replays (stream_id, state, intervals, bytes, duration_ms, error, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(stream_id) DO UPDATE SET state = excluded.state, intervals = excluded.intervals,
                   bytes = excluded.bytes, duration_ms = excluded.duration_ms, error = excluded.error,
                   updated_at = excluded.updated_at",
                params![
                    replay.stream_id.0,
                    replay.state.as_str(),
                    intervals,
                    i64::try_from(replay.bytes).unwrap_or(i64::MAX),
                    i64::try_from(replay.duration_ms).unwrap_or(i64::MAX),
                    replay.error,
                    ts(Utc::now())
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// The stream's public replay; `None` until its recording was finalised with public media.
    pub async fn public_replay(&self, id: &StreamId) -> Result<Option<PublicReplay>, Error> {
        let id = id.clone();
        self.read(move |c| {
            c.query_row(
                "SELECT stream_id, state, intervals, bytes, duration_ms, error FROM public_replays
                 WHERE stream_id = ?1",
                [id.0],
                |r| {
                    let intervals: String = r.get(2)?;
                    Ok(PublicReplay {
                        stream_id: StreamId(r.get(0)?),
                        state: RecordingState::parse(&r.get::<_, String>(1)?)
                            .ok_or_else(|| corrupt("public replay state"))?,
                        intervals_ms: serde_json::from_str(&intervals)
                            .map_err(|_| corrupt("public replay intervals"))?,
                        bytes: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                        duration_ms: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                        error: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(Error::from)
        })
        .await
    }
}
