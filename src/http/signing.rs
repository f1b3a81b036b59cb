//! Signed, expiring capabilities in URLs: `{expiry unix seconds}.{hex HMAC-SHA256}` over a
//! purpose and the stream id, so a practice playback token cannot download a recording.
use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::StreamId;

/// What a signature allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Playback,
    Recording,
    /// Downloading one clip (by its number in the stream).
    Clip(u32),
}

impl Purpose {
    fn label(self) -> String {
        match self {
            Purpose::Playback => "playback".into(),
            Purpose::Recording => "recording".into(),
            Purpose::Clip(n) => format!("clip/{n}"),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Expired,
    Invalid,
}

fn mac(secret: &[u8], purpose: Purpose, id: &StreamId, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(format!("{}:{}:{expires}", purpose.label(), id.as_str()).as_bytes());
    mac
}

pub fn sign(secret: &[u8], purpose: Purpose, id: &StreamId, expires: i64) -> String {
    let tag = mac(secret, purpose, id, expires).finalize().into_bytes();
    format!("{expires}.{}", hex::encode(tag))
}

pub fn verify(secret: &[u8], purpose: Purpose, id: &StreamId, signature: &str) -> Verdict {
    let Some((expires, tag)) = signature.split_once('.') else {
        return Verdict::Invalid;
    };
    let (Ok(expires), Ok(tag)) = (expires.parse::<i64>(), hex::decode(tag)) else {
        return Verdict::Invalid;
    };
    if mac(secret, purpose, id, expires)
        .verify_slice(&tag)
        .is_err()
    {
        return Verdict::Invalid;
    }
    if expires < Utc::now().timestamp() {
        Verdict::Expired
    } else {
        Verdict::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_purpose_stream_and_expiry() {
        let id = StreamId("abc".into());
        let later = Utc::now().timestamp() + 60;
        let sig = sign(b"k", Purpose::Playback, &id, later);
        assert_eq!(verify(b"k", Purpose::Playback, &id, &sig), Verdict::Valid);
        assert_eq!(
            verify(b"k", Purpose::Recording, &id, &sig),
            Verdict::Invalid
        );
        assert_eq!(
            verify(b"k", Purpose::Playback, &StreamId("abd".into()), &sig),
            Verdict::Invalid
        );
        assert_eq!(
            verify(b"other", Purpose::Playback, &id, &sig),
            Verdict::Invalid
        );
        let tampered = sig.replacen(&later.to_string(), &(later + 1000).to_string(), 1);
        assert_eq!(
            verify(b"k", Purpose::Playback, &id, &tampered),
            Verdict::Invalid
        );
        let clip = sign(b"k", Purpose::Clip(1), &id, later);
        assert_eq!(verify(b"k", Purpose::Clip(1), &id, &clip), Verdict::Valid);
        assert_eq!(verify(b"k", Purpose::Clip(2), &id, &clip), Verdict::Invalid);
        let old = sign(b"k", Purpose::Playback, &id, 1);
        assert_eq!(verify(b"k", Purpose::Playback, &id, &old), Verdict::Expired);
        assert_eq!(
            verify(b"k", Purpose::Playback, &id, "garbage"),
            Verdict::Invalid
        );
    }
}
