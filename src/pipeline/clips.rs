//! After a stream's recording is final: one MP4 clip per product chapter, cut from it without
//! re-encoding (see `output::clips`), recorded in the store as they are made.
use std::time::Duration;

use super::spec::StreamPaths;
use crate::output::clips;
use crate::store::{ClipState, Store, StreamId, chapters};

/// Cuts the clips of a stream whose recording lasts `recording_ms`. Errors are stored per clip
/// and logged: a clip that cannot be cut leaves the others and the recording as they are.
pub async fn cut_all(store: &Store, paths: &StreamPaths, id: &StreamId, recording_ms: u64) {
    let timeline = match store.focus_timeline(id).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(stream = %id, error = %e, "could not read the focus timeline");
            return;
        }
    };
    // A product focused for less than a millisecond of media has nothing to show.
    let chapters: Vec<_> = chapters(&timeline, Some(recording_ms))
        .into_iter()
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
        let (recording, out) = (paths.recording(), paths.clip(chapter.seq));
        let start = Duration::from_millis(chapter.start_ms);
        let end = Duration::from_millis(chapter.end_ms.unwrap_or(recording_ms));
        let result = tokio::task::spawn_blocking(move || clips::cut(&recording, &out, start, end))
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
