//! After a stream's recording is final: its public replay (the public intervals, back to back),
//! then one MP4 clip per product chapter cut from that replay, so that no clip holds practice
//! media. Both without re-encoding (see `output::replay`, `output::clips`), recorded in the
//! store as they are made.
use std::time::Duration;

use crate::output::visibility::PublicIntervals;
use crate::output::{clips, replay};
use crate::pipeline::spec::StreamPaths;
use crate::store::{Chapter, ClipState, PublicReplay, RecordingState, Store, StreamId, chapters};

/// Builds the public replay of a stream whose recording is final and whose public media was
/// `public`, then cuts its clips. Errors are stored and logged: a failed replay or clip leaves
/// the recording as it is.
pub async fn cut_public(
    store: &Store,
    paths: &StreamPaths,
    id: &StreamId,
    public: PublicIntervals,
) {
    if public.is_empty() {
        return;
    }
    let mut state = PublicReplay {
        stream_id: id.clone(),
        state: RecordingState::Finalizing,
        intervals_ms: public.intervals_ms.clone(),
        bytes: 0,
        duration_ms: 0,
        error: None,
    };
    if let Err(e) = store.set_public_replay(state.clone()).await {
        tracing::error!(stream = %id, error = %e, "could not record the public replay");
    }
    let (recording, out, intervals) = (paths.recording(), paths.public_replay(), public.clone());
    let built = tokio::task::spawn_blocking(move || replay::build(&recording, &intervals, &out))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    match built {
        Ok(b) => {
            tracing::info!(stream = %id, bytes = b.bytes, duration_s = b.duration.as_secs_f64(), "public replay ready");
            state.state = RecordingState::Ready;
            state.bytes = b.bytes;
            state.duration_ms = b.duration.as_millis() as u64;
        }
        Err(e) => {
            tracing::error!(stream = %id, error = %e, "public replay failed");
            state.state = RecordingState::Failed;
            state.error = Some(e);
        }
    }
    let ready = state.state == RecordingState::Ready;
    let replay_ms = state.duration_ms;
    if let Err(e) = store.set_public_replay(state).await {
        tracing::error!(stream = %id, error = %e, "could not store the public replay");
    }
    if ready {
        cut_all(store, paths, id, &public, replay_ms).await;
    }
}

/// The chapters of a stream as the public replay shows them: each focus interval clipped to its
/// public media and moved to replay time; chapters without public media are left out.
/// `end_ms` closes the last chapter (recording time; `None` while it is open on a live stream).
pub fn public_chapters(
    timeline: &[crate::store::FocusEvent],
    end_ms: Option<u64>,
    public: &PublicIntervals,
) -> Vec<Chapter> {
    chapters(timeline, end_ms)
        .into_iter()
        .filter_map(|c| {
            let pieces = public.clip_to_replay(c.start_ms, c.end_ms.unwrap_or(u64::MAX));
            let (first, last) = (pieces.first()?, pieces.last()?);
            Some(Chapter {
                start_ms: first.0,
                end_ms: c.end_ms.map(|_| last.1),
                ..c
            })
        })
        .collect()
}

/// Cuts the clips of a stream from its public replay (`replay_ms` long).
async fn cut_all(
    store: &Store,
    paths: &StreamPaths,
    id: &StreamId,
    public: &PublicIntervals,
    replay_ms: u64,
) {
    let timeline = match store.focus_timeline(id).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(stream = %id, error = %e, "could not read the focus timeline");
            return;
        }
    };
    // A product focused for less than a millisecond of public media has nothing to show.
    let chapters: Vec<_> = public_chapters(&timeline, Some(u64::MAX), public)
        .into_iter()
        .map(|c| Chapter {
            end_ms: c.end_ms.map(|e| e.min(replay_ms)),
            ..c
        })
        .filter(|c| c.end_ms.is_some_and(|end| end > c.start_ms))
        .collect();
    if chapters.is_empty() {
        return;
    }
    if let Err(e) = store.start_clips(id, &chapters).await {
        tracing::error!(stream = %id, error = %e, "could not record the clips to cut");
        return;
    }
    if let Err(e) = std::fs::create_dir_all(paths.clips_dir()) {
        tracing::error!(stream = %id, error = %e, "could not create the clips directory");
    }
    for chapter in chapters {
        let (source, out) = (paths.public_replay(), paths.clip(chapter.seq));
        let start = Duration::from_millis(chapter.start_ms);
        let end = Duration::from_millis(chapter.end_ms.unwrap_or(replay_ms));
        let result = tokio::task::spawn_blocking(move || clips::cut(&source, &out, start, end))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        let state = match result {
            Ok(cut) => {
                tracing::info!(stream = %id, clip = chapter.seq, start_s = cut.start.as_secs_f64(), end_s = cut.end.as_secs_f64(), bytes = cut.bytes, "clip ready");
                ClipState::Ready {
                    start_ms: cut.start.as_millis() as u64,
                    end_ms: cut.end.as_millis() as u64,
                    bytes: cut.bytes,
                }
            }
            Err(e) => {
                tracing::error!(stream = %id, clip = chapter.seq, error = %e, "clip failed");
                ClipState::Failed(e)
            }
        };
        if let Err(e) = store.finish_clip(id, chapter.seq, state).await {
            tracing::error!(stream = %id, error = %e, "could not store the clip's state");
        }
    }
}
