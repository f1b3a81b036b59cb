//! What a push says: a small JSON object the service worker (`web/sw.js`) shows as a
//! notification, with the same words as the bell.
use serde_json::{Value, json};

use crate::store::{Announcement, Notification};

/// Longest title or body sent (a push message carries at most 4 KiB encrypted).
const MAX_TEXT_CHARS: usize = 300;

/// `{title, body, url, tag, id, kind, stream_id}`: `url` is the watch page, relative to the
/// server (the service worker opens it on its own origin).
pub fn payload(n: &Notification) -> Vec<u8> {
    let detail = |k: &str| -> String {
        match n.detail.as_ref().and_then(|d| d.get(k)) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        }
    };
    let (title, body) = match n.kind {
        Announcement::Live => (format!("@{} is live", n.creator), n.title.clone()),
        Announcement::Upcoming => (
            format!("@{} scheduled a stream", n.creator),
            n.title.clone(),
        ),
        Announcement::Reminder => (
            "Starting now".to_string(),
            format!("{} (@{})", n.title, n.creator),
        ),
        Announcement::AuctionWon => (
            format!("You won {}", detail("product")),
            format!(
                "{} {} (@{})",
                detail("amount"),
                detail("currency"),
                n.creator
            ),
        ),
        Announcement::FlashSaleClaimed => (
            "Flash sale claimed".to_string(),
            format!("{} {} on {}", detail("price"), detail("currency"), n.title),
        ),
    };
    json!({
        "title": clip(&title),
        "body": clip(&body),
        "url": format!("/watch/{}", n.stream_id),
        "tag": format!("lf-{}", n.id),
        "id": n.id,
        "kind": n.kind,
        "stream_id": n.stream_id,
    })
    .to_string()
    .into_bytes()
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StreamId;

    #[test]
    fn a_live_entry_names_the_creator_and_the_stream_and_stays_small() {
        let n = Notification {
            id: 7,
            kind: Announcement::Live,
            stream_id: StreamId("abc".into()),
            title: "x".repeat(5000),
            creator: "maya".into(),
            created_at: chrono::Utc::now(),
            read: false,
            detail: None,
        };
        let p: Value = serde_json::from_slice(&payload(&n)).unwrap();
        assert_eq!(p["title"], "@maya is live");
        assert_eq!(p["url"], "/watch/abc");
        assert_eq!(p["kind"], "live");
        assert!(payload(&n).len() < 2048);
    }
}
