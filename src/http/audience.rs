//! Who is watching: HLS sessions, counted per session rather than per request. The master
//! playlist gives each player a session id (`sid`) that its media playlist requests carry; a
//! session counts while it fetched a media playlist within the last `WINDOW` (live players reload
//! one every segment).
//!
//! A sid is signed for its stream by the server, so made-up ones do not count, and memory is
//! bounded per stream and in all: sessions older than the window are pruned, and beyond the caps
//! new sessions are simply not counted (the count saturates).
//!
//! Creator analytics take the sessions of the public from here ([`Audience::take_sessions`]):
//! when each was first and last seen, whether it watched live or the replay. The owner's own
//! players count for `viewer_count` as before, but are never the audience of the analytics.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::store::StreamId;
use crate::store::analytics::SessionSpan;

pub const WINDOW: Duration = Duration::from_secs(30);
/// Sessions remembered per stream.
const MAX_SESSIONS_PER_STREAM: usize = 50_000;
/// Sessions remembered over all streams.
const MAX_SESSIONS: usize = 200_000;
const NONCE_LEN: usize = 10;
const NONCE_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Hex digits of the signature kept in the sid (64 bits).
const TAG_LEN: usize = 16;

pub struct Audience {
    secret: Vec<u8>,
    state: Mutex<State>,
}

/// One player session.
struct Session {
    first: Instant,
    last: Instant,
    /// The stream's owner (or a signed link): not the audience.
    owner: bool,
    /// It watches the replay of an ended stream.
    replay: bool,
    /// Seen since the analytics last took it.
    dirty: bool,
}

struct State {
    sessions: HashMap<StreamId, HashMap<String, Session>>,
    total: usize,
    pruned: Instant,
}

impl Audience {
    pub fn new(secret: &[u8]) -> Self {
        Audience {
            secret: secret.to_vec(),
            state: Mutex::new(State {
                sessions: HashMap::new(),
                total: 0,
                pruned: Instant::now(),
            }),
        }
    }

    fn tag(&self, stream: &StreamId, nonce: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("hmac takes any key length");
        mac.update(format!("sid:{}:{nonce}", stream.as_str()).as_bytes());
        let mut tag = hex::encode(mac.finalize().into_bytes());
        tag.truncate(TAG_LEN);
        tag
    }

    /// A new session id for a player of `stream`.
    pub fn new_session(&self, stream: &StreamId) -> String {
        let mut rng = rand::rng();
        let nonce: String = (0..NONCE_LEN)
            .map(|_| NONCE_ALPHABET[rng.random_range(0..NONCE_ALPHABET.len())] as char)
            .collect();
        let tag = self.tag(stream, &nonce);
        format!("{nonce}{tag}")
    }

    /// Whether this server issued `sid` for `stream`.
    fn issued(&self, stream: &StreamId, sid: &str) -> bool {
        if sid.len() != NONCE_LEN + TAG_LEN || !sid.is_ascii() {
            return false;
        }
        let (nonce, tag) = sid.split_at(NONCE_LEN);
        nonce.bytes().all(|b| NONCE_ALPHABET.contains(&b))
            && hmac_eq(self.tag(stream, nonce).as_bytes(), tag.as_bytes())
    }

    /// A media playlist served to session `sid` (call only once the playlist was found): to the
    /// stream's `owner` (or a signed link) or the public, of the live stream or its `replay`.
    pub fn seen(&self, stream: &StreamId, sid: &str, owner: bool, replay: bool) {
        if !self.issued(stream, sid) {
            return;
        }
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now.duration_since(state.pruned) >= WINDOW {
            state.prune(now);
        }
        let State {
            sessions, total, ..
        } = &mut *state;
        let known = sessions.get(stream).is_some_and(|s| s.contains_key(sid));
        if !known {
            let per_stream = sessions.get(stream).map_or(0, HashMap::len);
            if per_stream >= MAX_SESSIONS_PER_STREAM || *total >= MAX_SESSIONS {
                return;
            }
            *total += 1;
        }
        sessions
            .entry(stream.clone())
            .or_default()
            .entry(sid.to_string())
            .and_modify(|s| {
                s.last = now;
                s.dirty = true;
            })
            .or_insert(Session {
                first: now,
                last: now,
                owner,
                replay,
                dirty: true,
            });
    }

    /// Sessions of `stream` seen within the window.
    pub fn count(&self, stream: &StreamId) -> usize {
        let now = Instant::now();
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.sessions.get(stream).map_or(0, |s| {
            s.values()
                .filter(|s| now.duration_since(s.last) < WINDOW)
                .count()
        })
    }

    /// Sessions of the public (not the owner) watching `stream` live, seen `within` (at most
    /// the window): the analytics ask for a few segments, so that a player that left stops
    /// counting within a step or so.
    pub fn public_count(&self, stream: &StreamId, within: Duration) -> usize {
        let within = within.min(WINDOW);
        let now = Instant::now();
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.sessions.get(stream).map_or(0, |s| {
            s.values()
                .filter(|s| !s.owner && !s.replay && now.duration_since(s.last) < within)
                .count()
        })
    }

    /// The public's sessions seen since the last call, on every stream, as spans of wall-clock
    /// time; a session's watch time is its span plus one `segment` (the last one it fetched).
    pub fn take_sessions(&self, segment: Duration) -> Vec<SessionSpan> {
        let (now, wall) = (Instant::now(), chrono::Utc::now());
        let at = |i: Instant| {
            wall - chrono::TimeDelta::from_std(now.duration_since(i)).unwrap_or_default()
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut spans = Vec::new();
        for (stream, sessions) in state.sessions.iter_mut() {
            for (sid, s) in sessions.iter_mut().filter(|(_, s)| s.dirty) {
                s.dirty = false;
                if s.owner {
                    continue;
                }
                let watched = s.last.duration_since(s.first) + segment;
                spans.push(SessionSpan {
                    stream: stream.clone(),
                    sid: sid.clone(),
                    replay: s.replay,
                    first_at: at(s.first),
                    last_at: at(s.last),
                    watch_ms: i64::try_from(watched.as_millis()).unwrap_or(i64::MAX),
                });
            }
        }
        spans
    }
}

impl State {
    /// Forgets sessions not seen within the window (once the analytics took them), on every
    /// stream.
    fn prune(&mut self, now: Instant) {
        self.sessions.retain(|_, s| {
            s.retain(|_, s| s.dirty || now.duration_since(s.last) < WINDOW);
            !s.is_empty()
        });
        self.total = self.sessions.values().map(HashMap::len).sum();
        self.pruned = now;
    }
}

/// Compares without an early exit (the tag is a capability of sorts).
fn hmac_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_counted_once_however_often_they_ask() {
        let audience = Audience::new(b"k");
        let id = StreamId("abc".into());
        let (a, b) = (audience.new_session(&id), audience.new_session(&id));
        for _ in 0..5 {
            audience.seen(&id, &a, false, false);
        }
        audience.seen(&id, &b, false, false);
        audience.seen(&id, "not a session id", false, false);
        assert_eq!(audience.count(&id), 2);
        assert_eq!(audience.count(&StreamId("other".into())), 0);
    }

    #[test]
    fn only_sessions_issued_for_the_stream_count() {
        let audience = Audience::new(b"k");
        let (id, other) = (StreamId("abc".into()), StreamId("def".into()));
        let theirs = audience.new_session(&other);
        audience.seen(&id, &theirs, false, false);
        audience.seen(&id, "abcdefghij0123456789abcdef", false, false);
        audience.seen(
            &id,
            &Audience::new(b"another server").new_session(&id),
            false,
            false,
        );
        let mut forged = audience.new_session(&id);
        forged.replace_range(0..1, if forged.starts_with('a') { "b" } else { "a" });
        audience.seen(&id, &forged, false, false);
        assert_eq!(audience.count(&id), 0);
    }

    #[test]
    fn the_count_saturates_at_the_cap() {
        let audience = Audience::new(b"k");
        let id = StreamId("abc".into());
        for _ in 0..MAX_SESSIONS_PER_STREAM + 10 {
            audience.seen(&id, &audience.new_session(&id), false, false);
        }
        assert_eq!(audience.count(&id), MAX_SESSIONS_PER_STREAM);
    }

    #[test]
    fn analytics_take_the_publics_sessions_once_and_never_the_owners() {
        let audience = Audience::new(b"k");
        let id = StreamId("abc".into());
        let (viewer, owner, replay) = (
            audience.new_session(&id),
            audience.new_session(&id),
            audience.new_session(&id),
        );
        audience.seen(&id, &viewer, false, false);
        audience.seen(&id, &viewer, false, false);
        audience.seen(&id, &owner, true, false);
        audience.seen(&id, &replay, false, true);
        assert_eq!(audience.count(&id), 3);
        assert_eq!(audience.public_count(&id, WINDOW), 1, "live, not the owner");
        assert_eq!(audience.public_count(&id, Duration::ZERO), 0);
        let segment = Duration::from_secs(2);
        let mut spans = audience.take_sessions(segment);
        spans.sort_by_key(|s| s.replay);
        assert_eq!(spans.len(), 2);
        assert_eq!(
            (spans[0].sid.as_str(), spans[0].replay),
            (viewer.as_str(), false)
        );
        assert_eq!(
            (spans[1].sid.as_str(), spans[1].replay),
            (replay.as_str(), true)
        );
        assert!(
            spans
                .iter()
                .all(|s| s.watch_ms >= 2_000 && s.last_at >= s.first_at)
        );
        assert!(audience.take_sessions(segment).is_empty(), "taken once");
        audience.seen(&id, &viewer, false, false);
        assert_eq!(audience.take_sessions(segment).len(), 1, "seen again");
    }
}
