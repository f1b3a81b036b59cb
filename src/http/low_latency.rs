//! Low-latency HLS (RFC 8216bis): the CMAF renditions under `/hls/{id}/ll/{rendition}/`.
//!
//! - `index.m3u8` is the live playlist with parts. `_HLS_msn=M` (and `_HLS_part=P`) hold the
//!   request until segment M (part P of segment M) is listed: 400 when that is too far ahead to
//!   wait for, 503 after three target durations without it. `_HLS_skip=YES` asks for a delta update.
//! - `partNNNNN.P.m4s` comes from memory while its segment is being written, then as a byte range
//!   of the segment's file; asking for the part expected next (the preload hint) waits until it
//!   is complete.
//! - `segNNNNN.m4s` and `initNNNNN.mp4` come from disk, as the MPEG-TS segments do; `event.m3u8`
//!   lists every segment (VOD once ended).
//!
//! Access is that of the stream's other media (practice streams answer 404 to everyone but the
//! creator), checked before any wait.
use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use bytes::Bytes;

use super::AppState;
use super::error::ApiError;
use super::extract::MaybeAuth;
use super::hls::{access, media_response, playlist_response, playlist_with_cache, valid_name};
use crate::output::file_cache::FileCache;
use crate::output::hls::{
    self as hls_out, EVENT_PLAYLIST, EdgePosition, HlsOutput, LIVE_PLAYLIST, PartLookup,
    PlaylistKind,
};

const MEDIA_TYPE: &str = "video/mp4";
/// Parts' worth of media past the newest part that a blocking request may ask for (RFC 8216bis
/// §6.2.5.2: the Advance Part Limit is three divided by the part target when that is under a
/// second, three otherwise): three seconds ahead.
const ADVANCE_LIMIT: Duration = Duration::from_secs(3);
/// Target durations a blocked request waits before 503.
const BLOCK_TARGETS: u32 = 3;

/// What a blocking playlist request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Segment(u64),
    Part(u64, u64),
}

impl Want {
    fn from_query(params: &HashMap<String, String>) -> Result<Option<Want>, ApiError> {
        let number = |name: &str| -> Result<Option<u64>, ApiError> {
            params
                .get(name)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| ApiError::BadRequest {
                        code: "bad_hls_directive",
                        message: format!("{name} must be a whole number"),
                    })
                })
                .transpose()
        };
        match (number("_HLS_msn")?, number("_HLS_part")?) {
            (None, None) => Ok(None),
            (Some(m), None) => Ok(Some(Want::Segment(m))),
            (Some(m), Some(p)) => Ok(Some(Want::Part(m, p))),
            (None, Some(_)) => Err(ApiError::BadRequest {
                code: "bad_hls_directive",
                message: "_HLS_part needs _HLS_msn".into(),
            }),
        }
    }

    /// A part index past the final part of its (closed) segment asks for part 0 of the next
    /// segment (RFC 8216bis §6.2.5.2). `parts` tells how many parts a closed segment has.
    fn normalized(self, parts: impl Fn(u64) -> Option<u64>) -> Want {
        match self {
            Want::Part(m, p) if parts(m).is_some_and(|n| p >= n) => Want::Part(m + 1, 0),
            other => other,
        }
    }

    fn met(self, at: &EdgePosition) -> bool {
        at.ended
            || match self {
                Want::Segment(m) => at.last_segment.is_some_and(|s| s >= m),
                Want::Part(m, p) => at.last_msn > m || (at.last_msn == m && at.last_part >= p),
            }
    }

    /// Too far ahead to wait for (RFC 8216bis §6.2.5.2): a segment more than two past the
    /// newest, or a part more than the Advance Part Limit past the newest part (counting
    /// `per_segment` parts to a segment).
    fn too_far(self, at: &EdgePosition, limit: u64, per_segment: u64) -> bool {
        let (m, p) = match self {
            Want::Segment(m) => (m, None),
            Want::Part(m, p) => (m, Some(p)),
        };
        if m > at.last_msn + 2 {
            return true;
        }
        p.is_some_and(|p| {
            let ahead = (i128::from(m) - i128::from(at.last_msn)) * i128::from(per_segment)
                + i128::from(p)
                - i128::from(at.last_part);
            ahead > i128::from(limit)
        })
    }
}

/// The Advance Part Limit for parts of `part` (RFC 8216bis §6.2.5.2), and parts per segment.
fn part_limits(part: Duration, segment: Duration) -> (u64, u64) {
    let limit = if part < Duration::from_secs(1) {
        ADVANCE_LIMIT.as_nanos().div_ceil(part.as_nanos().max(1))
    } else {
        3
    };
    let per_segment = (segment.as_nanos() / part.as_nanos().max(1)).max(1);
    (limit as u64, per_segment as u64)
}

/// Waits until `ready` says yes (checked at once and after every change of `out`), or `limit`.
async fn wait_until(
    out: &HlsOutput,
    limit: Duration,
    mut ready: impl FnMut() -> Result<bool, ApiError>,
) -> Result<(), ApiError> {
    let mut changes = out.subscribe();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        changes.mark_unchanged();
        if ready()? {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                return Err(ApiError::Unavailable(
                    "not there yet; ask again (low-latency HLS)".into(),
                ));
            }
        }
    }
}

fn block_limit(state: &AppState) -> Duration {
    state.config.hls.segment.saturating_mul(BLOCK_TARGETS)
}

/// `GET /hls/{id}/ll/{rendition}/{file}`
#[utoipa::path(get, path = "/hls/{id}/ll/{rendition}/{file}", tag = "media", params(("id" = String, Path), ("rendition" = String, Path), ("file" = String, Path, description = "index.m3u8, event.m3u8, segNNNNN.m4s, partNNNNN.P.m4s or initNNNNN.mp4"), ("_HLS_msn" = Option<u64>, Query, description = "block until this segment is listed"), ("_HLS_part" = Option<u64>, Query, description = "block until this part of _HLS_msn is listed"), ("_HLS_skip" = Option<String>, Query, description = "YES: delta update"), ("token" = Option<String>, Query), ("sid" = Option<String>, Query, description = "player session (from the master playlist)")), responses((status = 200, description = "OK"), (status = 400, description = "asks too far ahead"), (status = 404, description = "not found (or not yours to see)"), (status = 503, description = "not there within three target durations")))]
pub async fn rendition_file(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path((id, rendition, file)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if !valid_name(&rendition) {
        return Err(ApiError::NotFound);
    }
    let a = access(&state, &id, who, &params).await?;
    let query = a.query.as_deref();
    let dir = || state.registry.paths(&a.id).low_latency_dir();
    let out = a.live.as_ref().and_then(|s| s.ll.clone());
    if file == LIVE_PLAYLIST || file == EVENT_PLAYLIST {
        // Counted only once a playlist is found (a 404 never counts).
        let seen = || a.count_session(&state, &params);
        let want = Want::from_query(&params)?;
        let Some(out) = out else {
            let text = hls_out::read_persisted(
                &state.files,
                &dir(),
                Some(&rendition),
                &file,
                a.audience,
                query,
            )
            .await
            .ok_or(ApiError::NotFound)?;
            seen();
            state.hls_counters.served(text.len());
            return Ok(playlist_response(text, a.public, false));
        };
        if file == EVENT_PLAYLIST {
            let text = out
                .served_playlist(&rendition, PlaylistKind::Event, a.audience, query)
                .ok_or(ApiError::NotFound)?;
            seen();
            state.hls_counters.served(text.len());
            return Ok(playlist_response(text, a.public, true));
        }
        if let Some(want) = want {
            let want = want.normalized(|msn| out.parts_in_segment(&rendition, msn, a.audience));
            let (limit, per_segment) = part_limits(state.config.hls.part, state.config.hls.segment);
            wait_until(&out, block_limit(&state), || {
                Ok(match out.edge_position(&rendition, a.audience) {
                    Some(at) if want.too_far(&at, limit, per_segment) => {
                        return Err(ApiError::BadRequest {
                            code: "too_far_ahead",
                            message: format!(
                                "{want:?} is too far past the live edge (segment {}, part {})",
                                at.last_msn, at.last_part
                            ),
                        });
                    }
                    Some(at) => want.met(&at),
                    None => false,
                })
            })
            .await?;
        }
        let skip = params.get("_HLS_skip").is_some_and(|v| v == "YES");
        let text = out
            .served_playlist(
                &rendition,
                PlaylistKind::LowLatency { skip },
                a.audience,
                query,
            )
            .ok_or(ApiError::NotFound)?;
        seen();
        state.hls_counters.served(text.len());
        // A blocked request names the playlist it waited for: a CDN may keep it (and collapse
        // identical ones); the plain reload must stay fresh.
        let cache: std::borrow::Cow<str> = match want {
            Some(_) => format!("max-age={}", block_limit(&state).as_secs().max(1)).into(),
            None => "max-age=1".into(),
        };
        return Ok(playlist_with_cache(text, a.public, &cache));
    }
    let bytes = if let Some((msn, index)) = part_name(&file) {
        let out = out.ok_or(ApiError::NotFound)?;
        let mut found = None;
        wait_until(&out, block_limit(&state), || {
            match out.part(&rendition, msn, index, a.audience) {
                PartLookup::Soon => return Ok(false),
                PartLookup::Missing => return Err(ApiError::NotFound),
                ready => found = Some(ready),
            }
            Ok(true)
        })
        .await?;
        match found {
            Some(PartLookup::Ready(bytes)) => bytes,
            Some(PartLookup::InSegment { path, range }) => {
                part_of_file(&state.files, &path, range).await?
            }
            _ => return Err(ApiError::NotFound),
        }
    } else if media_name(&file, "seg", ".m4s") || media_name(&file, "init", ".mp4") {
        // Practice media of a public stream is the owner's: by name too.
        let dir = dir();
        if !a.serves(&state, &dir, &rendition, &file, true).await {
            return Err(ApiError::NotFound);
        }
        let in_memory = out
            .as_ref()
            .and_then(|o| o.init_section(&rendition, &file, a.audience));
        match in_memory {
            Some(b) => b,
            None => state
                .files
                .read(&dir.join(&rendition).join(&file))
                .await
                .map_err(|_| ApiError::NotFound)?,
        }
    } else {
        return Err(ApiError::NotFound);
    };
    state.hls_counters.served(bytes.len());
    Ok(media_response(
        bytes,
        MEDIA_TYPE,
        a.media_cache(state.config.hls.segment),
    ))
}

/// The bytes `range` of a closed segment's file: a part of it (read through the file cache, so
/// the parts of a segment that viewers are fetching are read from the disk once).
async fn part_of_file(
    files: &FileCache,
    path: &std::path::Path,
    range: std::ops::Range<u64>,
) -> Result<Bytes, ApiError> {
    let file = files.read(path).await.map_err(|_| ApiError::NotFound)?;
    let (start, end) = (range.start as usize, range.end as usize);
    if start > end || end > file.len() {
        tracing::warn!(path = %path.display(), ?range, len = file.len(), "a part is not where its segment was written");
        return Err(ApiError::NotFound);
    }
    Ok(file.slice(start..end))
}

/// `partNNNNN.P.m4s` → (N, P).
fn part_name(file: &str) -> Option<(u64, usize)> {
    let (msn, index) = file
        .strip_prefix("part")?
        .strip_suffix(".m4s")?
        .split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(msn) && digits(index)).then(|| Some((msn.parse().ok()?, index.parse().ok()?)))?
}

/// `{prefix}NNNNN{suffix}`.
fn media_name(file: &str, prefix: &str, suffix: &str) -> bool {
    file.strip_prefix(prefix)
        .and_then(|f| f.strip_suffix(suffix))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(last_msn: u64, last_part: u64) -> EdgePosition {
        EdgePosition {
            last_msn,
            last_part,
            last_segment: last_msn.checked_sub(1),
            ended: false,
        }
    }

    #[test]
    fn a_blocking_request_is_met_by_its_part_or_anything_later() {
        let want = Want::Part(10, 3);
        assert!(!want.met(&at(10, 2)));
        assert!(want.met(&at(10, 3)));
        assert!(want.met(&at(11, 0)), "segment 10 ended with fewer parts");
        assert!(Want::Segment(10).met(&at(11, 0)));
        assert!(!Want::Segment(10).met(&at(10, 9)), "segment 10 still open");
    }

    #[test]
    fn the_advance_part_limit_is_three_seconds_of_parts_under_a_second() {
        let (limit, per_segment) = part_limits(Duration::from_millis(200), Duration::from_secs(2));
        assert_eq!((limit, per_segment), (15, 10));
        assert_eq!(
            part_limits(Duration::from_millis(333), Duration::from_secs(2)).0,
            10
        );
        assert_eq!(
            part_limits(Duration::from_secs(1), Duration::from_secs(4)),
            (3, 4)
        );
    }

    #[test]
    fn requests_too_far_ahead_are_refused() {
        let far = |want: Want, edge: EdgePosition| want.too_far(&edge, 15, 10);
        assert!(!far(Want::Part(11, 0), at(10, 9)));
        assert!(!far(Want::Part(12, 0), at(10, 9)));
        assert!(far(Want::Part(13, 0), at(10, 9)));
        assert!(!far(Want::Part(10, 6), at(10, 2)), "4 parts ahead");
        assert!(!far(Want::Part(10, 17), at(10, 2)), "15 parts ahead");
        assert!(far(Want::Part(10, 18), at(10, 2)));
        // hls.js asks for the part after the newest it has, across a segment boundary.
        assert!(!far(Want::Part(4, 9), at(4, 2)));
        assert!(!far(Want::Part(11, 5), at(10, 9)));
        assert!(far(Want::Part(12, 9), at(10, 2)));
        assert!(far(Want::Segment(13), at(10, 2)));
    }

    #[test]
    fn a_part_past_a_segments_end_is_part_zero_of_the_next() {
        let parts = |msn: u64| (msn <= 9).then_some(10);
        assert_eq!(Want::Part(9, 10).normalized(parts), Want::Part(10, 0));
        assert_eq!(Want::Part(9, 14).normalized(parts), Want::Part(10, 0));
        assert_eq!(Want::Part(9, 9).normalized(parts), Want::Part(9, 9));
        assert_eq!(
            Want::Part(10, 12).normalized(parts),
            Want::Part(10, 12),
            "open: unknown"
        );
        assert!(!Want::Part(9, 10).normalized(parts).met(&at(9, 9)));
        assert!(Want::Part(9, 10).normalized(parts).met(&at(10, 0)));
    }

    #[test]
    fn file_names_are_strict() {
        assert_eq!(part_name("part00012.3.m4s"), Some((12, 3)));
        assert_eq!(part_name("part00012.m4s"), None);
        assert_eq!(part_name("part.3.m4s"), None);
        assert_eq!(part_name("part00012.-3.m4s"), None);
        assert!(media_name("seg00001.m4s", "seg", ".m4s"));
        assert!(media_name("init00000.mp4", "init", ".mp4"));
        assert!(!media_name("init../x.mp4", "init", ".mp4"));
    }
}
