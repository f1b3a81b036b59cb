//! The live channel across nodes (`bus.url`): what a node sends to its own sockets of a stream
//! goes on the bus too, and the other nodes hand it to theirs; chat rules that change on one node
//! are reloaded on all; every node tells the others its own audience counts, and shows the sum.
//!
//! What arrives is untrusted: each message is size-checked by the bus, then its ids and event
//! are checked here; anything else is dropped and counted (`livefront_bus_rejected_total`).
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::ViewerCount;
use super::chat::Chat;
use super::wire::{MAX_STREAMS_PER_NODE, Wire, checked_event, event_type};
use crate::bus::{Bus, Stats};
use crate::store::{CreatorId, StreamId};

/// Every subject of the live channel starts with this (`livefront.live.{stream}`,
/// `livefront.rules.{creator}`, `livefront.counts`).
const SUBJECTS: &str = "livefront.>";

/// What a node does when another tells of a change of a stream's state (it went live there, or
/// ended): forget where the stream was live.
pub type OnStreamState = Box<dyn Fn(&StreamId) + Send + Sync>;

/// Takes the live channel's messages from the other nodes until `stop`.
pub async fn run(
    bus: std::sync::Arc<Bus>,
    chat: Chat,
    on_state: OnStreamState,
    stop: CancellationToken,
) {
    let mut messages = match bus.subscribe(SUBJECTS).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "live channel: no messages from other nodes");
            return;
        }
    };
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            m = messages.next() => match m {
                Some(m) => m,
                None => {
                    tracing::warn!("live channel: the bus subscription ended");
                    return;
                }
            },
        };
        receive(&chat, bus.node(), bus.stats(), &message.payload, &on_state);
    }
}

/// Handles one message from the bus.
pub fn receive(
    chat: &Chat,
    own: &str,
    stats: &Stats,
    payload: &[u8],
    on_state: &(dyn Fn(&StreamId) + Send + Sync),
) {
    let Some((node, wire)) = crate::bus::open::<Wire>(payload, own, stats) else {
        return;
    };
    tracing::debug!(node, ?wire, "bus message");
    let taken = match wire {
        Wire::Event { stream, event } => match (StreamId::parse(&stream), checked_event(&event)) {
            (Some(stream), Some(event)) => {
                if event_type(event) == Some("stream_state") {
                    on_state(&stream);
                }
                chat.hub().deliver(&stream, event.into());
                true
            }
            _ => false,
        },
        Wire::Rules { creator, event } => {
            let event = match event.as_deref().map(checked_event) {
                None => Some(None),
                Some(Some(e)) if matches!(event_type(e), Some("user_banned" | "user_unbanned")) => {
                    Some(Some(e))
                }
                Some(_) => None,
            };
            match (CreatorId::parse(&creator), event) {
                (Some(creator), Some(event)) => {
                    chat.rules_changed_elsewhere(&creator, event);
                    true
                }
                _ => false,
            }
        }
        Wire::Counts { streams } => {
            let counts: Option<HashMap<StreamId, ViewerCount>> = (streams.len()
                <= MAX_STREAMS_PER_NODE)
                .then(|| {
                    streams
                        .into_iter()
                        .map(|c| {
                            let count = ViewerCount {
                                watching: c.watching,
                                connected: c.connected,
                            };
                            StreamId::parse(&c.stream).map(|s| (s, count))
                        })
                        .collect()
                })
                .flatten();
            match counts {
                Some(counts) => {
                    if !chat.remote_counts().update(&node, counts, Instant::now()) {
                        tracing::warn!(node, "bus: too many nodes; this one's counts are ignored");
                    }
                    true
                }
                None => false,
            }
        }
    };
    if !taken {
        stats.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(node, "bus message dropped: ids or event not valid");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChatConfig;
    use crate::live::wire::MAX_EVENT_BYTES;
    use crate::live::{ChatMessage, ChatRole, LiveEvent, LiveHub};
    use crate::store::testing::store_with_stream;

    fn envelope(node: &str, body: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"node": node, "body": body})).unwrap()
    }

    #[tokio::test]
    async fn hostile_bus_input_is_dropped_and_counted() {
        let (_dir, store, stream) = store_with_stream("host").await;
        let chat = Chat::new(store, LiveHub::default(), ChatConfig::default());
        let mut rx = chat.hub().subscribe(&stream.id);
        let stats = Stats::default();
        let message = LiveEvent::ChatMessage(ChatMessage {
            id: 1,
            user: "fan".into(),
            role: ChatRole::Viewer,
            text: "hi".into(),
            at: chrono::Utc::now(),
        })
        .to_text();
        let id = stream.id.as_str();
        let hostile: Vec<Vec<u8>> = vec![
            b"garbage \xff".to_vec(),
            vec![b' '; crate::bus::MAX_MESSAGE_BYTES + 1],
            envelope("b", serde_json::json!({"kind": "launch_missiles"})),
            envelope("b", serde_json::json!({"kind": "event", "stream": id})),
            // A stream id that is not one (NATS wildcards, path tricks).
            envelope(
                "b",
                serde_json::json!({"kind": "event", "stream": "../*", "event": &*message}),
            ),
            // Events that never cross, or are not JSON, or too large.
            envelope(
                "b",
                serde_json::json!({"kind": "event", "stream": id,
                "event": r#"{"type":"error","code":"x","message":"y"}"#}),
            ),
            envelope(
                "b",
                serde_json::json!({"kind": "event", "stream": id,
                "event": r#"{"type":"viewer_count","watching":1000000,"connected":1}"#}),
            ),
            envelope(
                "b",
                serde_json::json!({"kind": "event", "stream": id,
                "event": r#"{"type":"chat_message","id":1"#}),
            ),
            envelope(
                "b",
                serde_json::json!({"kind": "event", "stream": id,
                "event": format!(r#"{{"type":"chat_message","text":"{}"}}"#, "x".repeat(MAX_EVENT_BYTES))}),
            ),
            envelope("b", serde_json::json!({"kind": "rules", "creator": "a b"})),
            envelope(
                "b",
                serde_json::json!({"kind": "rules", "creator": stream.creator_id.as_str(),
                "event": &*message}),
            ),
            envelope(
                "b",
                serde_json::json!({"kind": "counts",
                "streams": (0..=MAX_STREAMS_PER_NODE).map(|_| serde_json::json!({"stream": id, "watching": 1, "connected": 1})).collect::<Vec<_>>()}),
            ),
            envelope(
                "b",
                serde_json::json!({"kind": "counts",
                "streams": [{"stream": id, "watching": -1, "connected": 1}]}),
            ),
        ];
        let forgotten = std::sync::Mutex::new(Vec::new());
        let on_state = |s: &StreamId| forgotten.lock().unwrap().push(s.clone());
        for payload in &hostile {
            receive(&chat, "a", &stats, payload, &on_state);
        }
        assert_eq!(stats.rejected.load(Ordering::Relaxed), hostile.len() as u64);
        assert!(rx.try_recv().is_err(), "nothing hostile reached a socket");
        assert_eq!(
            chat.remote_counts().sum(&stream.id, Instant::now()),
            ViewerCount {
                watching: 0,
                connected: 0
            }
        );

        // The same channel takes well-formed messages, and ignores its own.
        let good = envelope(
            "b",
            serde_json::json!({"kind": "event", "stream": id, "event": &*message}),
        );
        receive(&chat, "b", &stats, &good, &on_state);
        assert!(
            rx.try_recv().is_err(),
            "a node's own message is not delivered again"
        );
        receive(&chat, "a", &stats, &good, &on_state);
        assert_eq!(&*rx.try_recv().unwrap(), &*message);
        assert!(
            forgotten.lock().unwrap().is_empty(),
            "a chat message moves no stream"
        );
        // A change of the stream's state elsewhere: where it is live is looked up again.
        let state = LiveEvent::StreamState(crate::streams::events::StreamStatus {
            state: crate::store::StreamState::Live,
            mode: crate::store::Mode::Public,
            reconnecting: false,
        })
        .to_text();
        let moved = envelope(
            "b",
            serde_json::json!({"kind": "event", "stream": id, "event": &*state}),
        );
        receive(&chat, "a", &stats, &moved, &on_state);
        assert_eq!(*forgotten.lock().unwrap(), std::slice::from_ref(&stream.id));
        assert_eq!(&*rx.try_recv().unwrap(), &*state);
        let counts = envelope(
            "b",
            serde_json::json!({"kind": "counts",
            "streams": [{"stream": id, "watching": 2, "connected": 3}]}),
        );
        receive(&chat, "a", &stats, &counts, &on_state);
        assert_eq!(
            chat.remote_counts().sum(&stream.id, Instant::now()),
            ViewerCount {
                watching: 2,
                connected: 3
            }
        );
        assert_eq!(stats.rejected.load(Ordering::Relaxed), hostile.len() as u64);
    }
}
