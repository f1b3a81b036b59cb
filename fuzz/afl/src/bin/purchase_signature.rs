//! The `X-Livefront-Signature` header of a purchase report.
use livefront::webhooks::signature::{sign, verify};

fn main() {
    let secret = b"shop-secret-0123456789";
    let body = br#"{"order_id":"o-1","items":[],"at":"2026-12-03T12:00:00Z"}"#;
    let now = 1_796_300_000;
    let good = sign(secret, now, body);
    afl::fuzz!(|data: &[u8]| {
        let header = String::from_utf8_lossy(data);
        if verify(secret, &header, body, now).is_ok() {
            let mac = &good[good.len() - 64..];
            assert!(
                header.to_ascii_lowercase().contains(mac),
                "{header:?} passed"
            );
        }
    });
}
