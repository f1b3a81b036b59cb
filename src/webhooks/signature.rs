//! `X-Livefront-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
//! (DESIGN.md, "Signed requests"). Receivers reject a timestamp older than `MAX_AGE_S`.
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "X-Livefront-Signature";
/// How old a signed request may be before it counts as a replay.
pub const MAX_AGE_S: i64 = 300;

fn mac(secret: &[u8], t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac
}

/// The header value for `body` signed at unix time `t`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex::encode(mac(secret, t, body).finalize().into_bytes())
    )
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("malformed signature header")]
    Malformed,
    #[error("signature timestamp is more than {MAX_AGE_S} s away from now")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a header value against `body` at unix time `now` (constant-time comparison).
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64) -> Result<(), Invalid> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(Invalid::Malformed);
    };
    // abs_diff: `now - t` overflows for a `t` near i64::MIN or MAX.
    if now.abs_diff(t) > MAX_AGE_S.unsigned_abs() {
        return Err(Invalid::Stale);
    }
    mac(secret, t, body)
        .verify_slice(&v1)
        .map_err(|_| Invalid::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        let now = 1_700_000_000;
        for t in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
            let header = sign(b"secret", t, b"{}");
            assert_eq!(
                verify(b"secret", &header, b"{}", now),
                Err(Invalid::Stale),
                "{t}"
            );
        }
    }

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let header = sign(b"secret", 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="), "{header}");
        assert_eq!(
            verify(b"secret", &header, b"{\"a\":1}", 1_700_000_010),
            Ok(())
        );
        assert_eq!(
            verify(b"secret", &header, b"{\"a\":2}", 1_700_000_010),
            Err(Invalid::Mismatch)
        );
        assert_eq!(
            verify(b"other", &header, b"{\"a\":1}", 1_700_000_010),
            Err(Invalid::Mismatch)
        );
        assert_eq!(
            verify(
                b"secret",
                &header,
                b"{\"a\":1}",
                1_700_000_000 + MAX_AGE_S + 1
            ),
            Err(Invalid::Stale),
            "a replay later than the window"
        );
        let moved = header.replace("t=1700000000", "t=1700000005");
        assert_eq!(
            verify(b"secret", &moved, b"{\"a\":1}", 1_700_000_010),
            Err(Invalid::Mismatch),
            "the timestamp is signed too"
        );
        assert_eq!(verify(b"secret", "v1=zz", b"", 0), Err(Invalid::Malformed));
    }
}
