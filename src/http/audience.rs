//! Who is watching: HLS sessions, counted per session rather than per request. The master
//! playlist gives each player a session id (`sid`) that its media playlist requests carry; a
//! session counts while it fetched a media playlist within the last `WINDOW` (live players reload
//! one every segment).
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::store::StreamId;

pub const WINDOW: Duration = Duration::from_secs(30);
/// Sessions remembered per stream; beyond this the oldest are forgotten first.
const MAX_SESSIONS: usize = 100_000;
const SID_LEN: usize = 12;
const SID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Default)]
pub struct Audience {
    sessions: Mutex<HashMap<StreamId, HashMap<String, Instant>>>,
}

/// A new session id.
pub fn new_session() -> String {
    let mut rng = rand::rng();
    (0..SID_LEN)
        .map(|_| SID_ALPHABET[rng.random_range(0..SID_ALPHABET.len())] as char)
        .collect()
}

fn valid(sid: &str) -> bool {
    sid.len() == SID_LEN && sid.bytes().all(|b| SID_ALPHABET.contains(&b))
}

impl Audience {
    /// A media playlist request of session `sid`.
    pub fn seen(&self, stream: &StreamId, sid: &str) {
        if !valid(sid) {
            return;
        }
        let now = Instant::now();
        let mut all = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let sessions = all.entry(stream.clone()).or_default();
        if sessions.len() >= MAX_SESSIONS && !sessions.contains_key(sid) {
            sessions.retain(|_, at| now.duration_since(*at) < WINDOW);
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(sid.to_string(), now);
    }

    /// Sessions of `stream` seen within the window.
    pub fn count(&self, stream: &StreamId) -> usize {
        let now = Instant::now();
        let mut all = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sessions) = all.get_mut(stream) else {
            return 0;
        };
        sessions.retain(|_, at| now.duration_since(*at) < WINDOW);
        let n = sessions.len();
        if n == 0 {
            all.remove(stream);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_counted_once_however_often_they_ask() {
        let audience = Audience::default();
        let id = StreamId("abc".into());
        let (a, b) = (new_session(), new_session());
        for _ in 0..5 {
            audience.seen(&id, &a);
        }
        audience.seen(&id, &b);
        audience.seen(&id, "not a session id");
        assert_eq!(audience.count(&id), 2);
        assert_eq!(audience.count(&StreamId("other".into())), 0);
    }
}
