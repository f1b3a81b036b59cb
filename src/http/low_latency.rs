//! Low-latency HLS (RFC 8216bis): the CMAF renditions under `/hls/{id}/ll/{rendition}/`.
//!
//! - `index.m3u8` is the live playlist with parts. `_HLS_msn=M` (and `_HLS_part=P`) hold the
//!   request until segment M (part P of segment M) is listed: 400 when that is too far ahead to
//!   wait for, 503 after three target durations without it. `_HLS_skip=YES` asks for a delta update.
//! - `partNNNNN.P.m4s` comes from memory; asking for the part expected next (the preload hint)
//!   waits until it is complete.
//! - `segNNNNN.m4s` and `initNNNNN.mp4` come from disk, as the MPEG-TS segments do; `event.m3u8`
//!   lists every segment (VOD once ended).
//!
//! Access is that of the stream's other media (practice streams answer 404 to everyone but the
//! creator), checked before any wait.
use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::extract::MaybeAuth;
use super::hls::{access, media_response, playlist_response, playlist_with_cache, valid_name};
use crate::output::hls::{
    self as hls_out, EVENT_PLAYLIST, EdgePosition, HlsOutput, LIVE_PLAYLIST, PartLookup,
};

const MEDIA_TYPE: &str = "video/mp4";
/// How far past the newest part a blocking request may ask (RFC 8216bis §6.2.5.2: the Advance Part
/// Limit is 3 when the part target is under a second).
const ADVANCE_PART_LIMIT: u64 = 3;
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

    fn met(self, at: &EdgePosition) -> bool {
        at.ended
            || match self {
                Want::Segment(m) => at.last_segment.is_some_and(|s| s >= m),
                Want::Part(m, p) => at.last_msn > m || (at.last_msn == m && at.last_part >= p),
            }
    }

    /// Too far ahead to wait for (RFC 8216bis §6.2.5.2).
    fn too_far(self, at: &EdgePosition) -> bool {
        let (m, p) = match self {
            Want::Segment(m) => (m, None),
            Want::Part(m, p) => (m, Some(p)),
        };
        m > at.last_msn + 2
            || p.is_some_and(|p| m == at.last_msn && p > at.last_part + ADVANCE_PART_LIMIT)
    }
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
    let dir = state.registry.paths(&a.id).low_latency_dir();
    let out = a.live.as_ref().and_then(|s| s.ll.clone());
    if file == LIVE_PLAYLIST || file == EVENT_PLAYLIST {
        // Counted only once a playlist is found (a 404 never counts).
        let seen = || {
            if let Some(sid) = params.get("sid") {
                state.audience.seen(&a.id, sid);
            }
        };
        let want = Want::from_query(&params)?;
        let Some(out) = out else {
            let text = hls_out::read_persisted(&dir, Some(&rendition), &file)
                .map(|t| hls_out::with_query(&t, query))
                .ok_or(ApiError::NotFound)?;
            seen();
            state.hls_counters.served(text.len());
            return Ok(playlist_response(text, a.public, false));
        };
        if file == EVENT_PLAYLIST {
            let text = out
                .media_playlist(&rendition, EVENT_PLAYLIST, query)
                .ok_or(ApiError::NotFound)?;
            seen();
            state.hls_counters.served(text.len());
            return Ok(playlist_response(text, a.public, true));
        }
        if let Some(want) = want {
            wait_until(&out, block_limit(&state), || {
                Ok(match out.edge_position(&rendition) {
                    Some(at) if want.too_far(&at) => {
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
            .low_latency_playlist(&rendition, skip, query)
            .ok_or(ApiError::NotFound)?;
        seen();
        state.hls_counters.served(text.len());
        // A blocked request names the playlist it waited for: a CDN may keep it (and collapse
        // identical ones); the plain reload must stay fresh.
        let cache = match want {
            Some(_) => format!("max-age={}", block_limit(&state).as_secs().max(1)),
            None => "max-age=1".into(),
        };
        return Ok(playlist_with_cache(text, a.public, &cache));
    }
    let bytes = if let Some((msn, index)) = part_name(&file) {
        let out = out.ok_or(ApiError::NotFound)?;
        let mut found = None;
        wait_until(&out, block_limit(&state), || {
            match out.part(&rendition, msn, index) {
                PartLookup::Ready(b) => found = Some(b),
                PartLookup::Soon => return Ok(false),
                PartLookup::Missing => return Err(ApiError::NotFound),
            }
            Ok(true)
        })
        .await?;
        found.ok_or(ApiError::NotFound)?
    } else if media_name(&file, "seg", ".m4s") || media_name(&file, "init", ".mp4") {
        let in_memory = out.as_ref().and_then(|o| o.init_section(&rendition, &file));
        match in_memory {
            Some(b) => b,
            None => tokio::fs::read(dir.join(&rendition).join(&file))
                .await
                .map_err(|_| ApiError::NotFound)?
                .into(),
        }
    } else {
        return Err(ApiError::NotFound);
    };
    state.hls_counters.served(bytes.len());
    Ok(media_response(bytes, MEDIA_TYPE, a.public))
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
    fn requests_too_far_ahead_are_refused() {
        assert!(!Want::Part(11, 0).too_far(&at(10, 9)));
        assert!(!Want::Part(12, 0).too_far(&at(10, 9)));
        assert!(Want::Part(13, 0).too_far(&at(10, 9)));
        assert!(!Want::Part(10, 5).too_far(&at(10, 2)));
        assert!(Want::Part(10, 6).too_far(&at(10, 2)));
        assert!(Want::Segment(13).too_far(&at(10, 2)));
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
