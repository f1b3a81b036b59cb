//! Signed, expiring capabilities in URLs: `{expiry unix seconds}.{hex HMAC-SHA256}` over a
//! purpose and the stream id, so a practice playback token cannot download a recording. A ticket
//! (`{subject}.{expiry}.{hex}`) is also bound to whom it was given (its subject).
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
    /// Opening the stream's live channel (a ticket, for one principal).
    Live,
}

impl Purpose {
    fn label(self) -> String {
        match self {
            Purpose::Playback => "playback".into(),
            Purpose::Recording => "recording".into(),
            Purpose::Clip(n) => format!("clip/{n}"),
            Purpose::Live => "live".into(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Expired,
    Invalid,
}

fn mac(secret: &[u8], label: &str, id: &StreamId, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(format!("{label}:{}:{expires}", id.as_str()).as_bytes());
    mac
}

/// A ticket's label: the purpose and the subject (which `split_once(':')` cannot confuse with
/// the stream id or expiry that follow: those have no `:`).
fn ticket_label(purpose: Purpose, subject: &str) -> String {
    format!("{}/{subject}", purpose.label())
}

fn sign_label(secret: &[u8], label: &str, id: &StreamId, expires: i64) -> String {
    let tag = mac(secret, label, id, expires).finalize().into_bytes();
    format!("{expires}.{}", hex::encode(tag))
}

fn verify_label(secret: &[u8], label: &str, id: &StreamId, signature: &str) -> Verdict {
    let Some((expires, tag)) = signature.split_once('.') else {
        return Verdict::Invalid;
    };
    let (Ok(expires), Ok(tag)) = (expires.parse::<i64>(), hex::decode(tag)) else {
        return Verdict::Invalid;
    };
    if mac(secret, label, id, expires).verify_slice(&tag).is_err() {
        return Verdict::Invalid;
    }
    if expires < Utc::now().timestamp() {
        Verdict::Expired
    } else {
        Verdict::Valid
    }
}

pub fn sign(secret: &[u8], purpose: Purpose, id: &StreamId, expires: i64) -> String {
    sign_label(secret, &purpose.label(), id, expires)
}

pub fn verify(secret: &[u8], purpose: Purpose, id: &StreamId, signature: &str) -> Verdict {
    verify_label(secret, &purpose.label(), id, signature)
}

/// A ticket for `subject` (who it was given to): `{subject}.{expiry}.{hex}`.
pub fn sign_ticket(
    secret: &[u8],
    purpose: Purpose,
    id: &StreamId,
    subject: &str,
    expires: i64,
) -> String {
    let signature = sign_label(secret, &ticket_label(purpose, subject), id, expires);
    format!("{subject}.{signature}")
}

/// A ticket's verdict, and its subject when valid.
pub fn verify_ticket<'a>(
    secret: &[u8],
    purpose: Purpose,
    id: &StreamId,
    ticket: &'a str,
) -> Result<&'a str, Verdict> {
    let Some((rest, _tag)) = ticket.rsplit_once('.') else {
        return Err(Verdict::Invalid);
    };
    let Some((subject, _expires)) = rest.rsplit_once('.') else {
        return Err(Verdict::Invalid);
    };
    let signature = &ticket[subject.len() + 1..];
    match verify_label(secret, &ticket_label(purpose, subject), id, signature) {
        Verdict::Valid => Ok(subject),
        other => Err(other),
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

    #[test]
    fn tickets_bind_their_subject_too() {
        let id = StreamId("abc".into());
        let later = Utc::now().timestamp() + 60;
        let ticket = sign_ticket(b"k", Purpose::Live, &id, "viewer:v1", later);
        assert_eq!(
            verify_ticket(b"k", Purpose::Live, &id, &ticket),
            Ok("viewer:v1")
        );
        let other = ticket.replacen("viewer:v1", "viewer:v2", 1);
        assert_eq!(
            verify_ticket(b"k", Purpose::Live, &id, &other),
            Err(Verdict::Invalid)
        );
        let admin = ticket.replacen("viewer:v1", "admin", 1);
        assert_eq!(
            verify_ticket(b"k", Purpose::Live, &id, &admin),
            Err(Verdict::Invalid)
        );
        assert_eq!(
            verify_ticket(b"k", Purpose::Live, &StreamId("abd".into()), &ticket),
            Err(Verdict::Invalid)
        );
        // Neither a plain signature nor a ticket of another purpose passes.
        let plain = sign(b"k", Purpose::Live, &id, later);
        assert_eq!(verify(b"k", Purpose::Live, &id, &ticket), Verdict::Invalid);
        assert!(verify_ticket(b"k", Purpose::Live, &id, &plain).is_err());
        let playback = sign_ticket(b"k", Purpose::Playback, &id, "viewer:v1", later);
        assert!(verify_ticket(b"k", Purpose::Live, &id, &playback).is_err());
        let old = sign_ticket(b"k", Purpose::Live, &id, "viewer:v1", 1);
        assert_eq!(
            verify_ticket(b"k", Purpose::Live, &id, &old),
            Err(Verdict::Expired)
        );
        for garbage in ["", ".", "..", "a.b", "a.1.zz", "a.x.00"] {
            assert!(verify_ticket(b"k", Purpose::Live, &id, garbage).is_err());
        }
    }
}
