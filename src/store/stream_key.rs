//! Stream keys: secret, random, never logged whole.
use std::fmt;

use rand::Rng;

const KEY_LEN: usize = 24;
const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A publisher's secret. `Display`/`Debug` show only a redacted form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StreamKey(String);

impl StreamKey {
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let s: String = (0..KEY_LEN)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        StreamKey(format!("lf_{s}"))
    }

    pub fn from_string(s: String) -> Self {
        StreamKey(s)
    }

    /// The whole secret, for the creator's API response and the store only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn redacted(&self) -> String {
        redact(&self.0)
    }

    /// Whether `sent` is this key, compared through digests (no early exit on the key's bytes).
    pub fn matches(&self, sent: &str) -> bool {
        digest(&self.0) == digest(sent)
    }
}

fn digest(key: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes()).into()
}

/// A key as safe to log: the first 6 characters and the length.
pub fn redact(key: &str) -> String {
    let head: String = key.chars().take(6).collect();
    format!("{head}…({} chars)", key.chars().count())
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamKey({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_and_redacted_in_logs() {
        let a = StreamKey::generate();
        let b = StreamKey::generate();
        assert_ne!(a, b);
        assert!(!format!("{a}").contains(&a.expose()[6..]));
        assert!(!format!("{a:?}").contains(&a.expose()[6..]));
    }
}
