//! The live channel across nodes (`bus.url`): what a node sends to its own sockets of a stream
//! goes on the bus too, and the other nodes hand it to theirs; chat rules that change on one node
//! are reloaded on all; every node tells the others its own audience counts, and shows the sum.
//!
//! What arrives is untrusted: each message is size-checked by the bus, then its ids and event
//! are checked here; anything else is dropped and counted (`livefront_bus_rejected_total`).
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::ViewerCount;
use super::chat::Chat;
use crate::bus::{Bus, Stats};
use crate::store::{CreatorId, StreamId};

/// Every subject of the live channel starts with this (`livefront.live.{stream}`,
/// `livefront.rules.{creator}`, `livefront.counts`).
const SUBJECTS: &str = "livefront.>";
/// Live events larger than this are not taken from the bus (a chat message is at most a few KiB).
const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Nodes whose counts are kept at once; a new node beyond them is ignored until one goes quiet.
const MAX_NODES: usize = 256;
/// Streams one node's counts may name.
pub const MAX_STREAMS_PER_NODE: usize = 2048;
/// A node's counts are dropped after this many periods without news from it.
const MISSED_PERIODS: u32 = 3;

/// The live events that cross nodes: all but `viewer_count` (each node sums its own, see
/// [`RemoteCounts`]) and `error` (one client's).
const CROSSING: &[&str] = &[
    "product_focused",
    "promo_started",
    "chat_message",
    "message_deleted",
    "user_banned",
    "user_unbanned",
    "stream_state",
    "flash_sale",
    "auction",
    "destination_state",
];

/// A message of the live channel on the bus.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Wire {
    /// A live event for a stream's sockets, as clients receive it.
    Event { stream: String, event: String },
    /// A creator's chat rules changed (ban, unban, blocked words); `event` goes to the sockets of
    /// their streams.
    Rules {
        creator: String,
        event: Option<String>,
    },
    /// The sending node's own counts, of every stream it has sockets of.
    Counts { streams: Vec<NodeCount> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCount {
    pub stream: String,
    pub watching: usize,
    pub connected: usize,
}

impl Wire {
    pub fn subject(&self) -> String {
        match self {
            Wire::Event { stream, .. } => format!("livefront.live.{stream}"),
            Wire::Rules { creator, .. } => format!("livefront.rules.{creator}"),
            Wire::Counts { .. } => "livefront.counts".into(),
        }
    }
}

/// The `type` of a serialised live event (`{"type":"…",…}`).
fn event_type(event: &str) -> Option<&str> {
    let rest = event.strip_prefix(r#"{"type":""#)?;
    Some(&rest[..rest.find('"')?])
}

/// Whether a serialised live event goes to the other nodes too.
pub fn crosses_nodes(event: &str) -> bool {
    event_type(event).is_some_and(|t| CROSSING.contains(&t))
}

/// A live event from another node, if it is one that crosses, whole JSON, and not too large.
fn checked_event(event: &str) -> Option<&str> {
    (event.len() <= MAX_EVENT_BYTES
        && crosses_nodes(event)
        && serde_json::from_str::<serde::de::IgnoredAny>(event).is_ok())
    .then_some(event)
}

/// The other nodes' counts, per node, each dropped when that node has been quiet too long.
pub struct RemoteCounts {
    fresh_for: Duration,
    nodes: Mutex<HashMap<String, NodeCounts>>,
}

struct NodeCounts {
    at: Instant,
    streams: HashMap<StreamId, ViewerCount>,
}

impl RemoteCounts {
    /// For nodes that send their counts every `period`.
    pub fn new(period: Duration) -> Self {
        RemoteCounts {
            fresh_for: (period * MISSED_PERIODS).max(Duration::from_secs(1)),
            nodes: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, NodeCounts>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A node's counts replace what it said before (a stream it no longer names has none there).
    /// False when the node was not taken (too many nodes).
    pub fn update(&self, node: &str, counts: HashMap<StreamId, ViewerCount>, now: Instant) -> bool {
        let mut nodes = self.lock();
        let fresh_for = self.fresh_for;
        nodes.retain(|_, n| now.duration_since(n.at) < fresh_for);
        if !nodes.contains_key(node) && nodes.len() >= MAX_NODES {
            return false;
        }
        nodes.insert(
            node.to_string(),
            NodeCounts {
                at: now,
                streams: counts,
            },
        );
        true
    }

    /// The sum of the fresh counts of the other nodes for a stream.
    pub fn sum(&self, stream: &StreamId, now: Instant) -> ViewerCount {
        let nodes = self.lock();
        let mut sum = ViewerCount {
            watching: 0,
            connected: 0,
        };
        for n in nodes
            .values()
            .filter(|n| now.duration_since(n.at) < self.fresh_for)
        {
            if let Some(c) = n.streams.get(stream) {
                sum.watching += c.watching;
                sum.connected += c.connected;
            }
        }
        sum
    }
}

/// Takes the live channel's messages from the other nodes until `stop`.
pub async fn run(bus: std::sync::Arc<Bus>, chat: Chat, stop: CancellationToken) {
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
        receive(&chat, bus.node(), bus.stats(), &message.payload);
    }
}

/// Handles one message from the bus.
pub fn receive(chat: &Chat, own: &str, stats: &Stats, payload: &[u8]) {
    let Some((node, wire)) = crate::bus::open::<Wire>(payload, own, stats) else {
        return;
    };
    tracing::debug!(node, ?wire, "bus message");
    let taken = match wire {
        Wire::Event { stream, event } => match (StreamId::parse(&stream), checked_event(&event)) {
            (Some(stream), Some(event)) => {
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
        for payload in &hostile {
            receive(&chat, "a", &stats, payload);
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
        receive(&chat, "b", &stats, &good);
        assert!(
            rx.try_recv().is_err(),
            "a node's own message is not delivered again"
        );
        receive(&chat, "a", &stats, &good);
        assert_eq!(&*rx.try_recv().unwrap(), &*message);
        let counts = envelope(
            "b",
            serde_json::json!({"kind": "counts",
            "streams": [{"stream": id, "watching": 2, "connected": 3}]}),
        );
        receive(&chat, "a", &stats, &counts);
        assert_eq!(
            chat.remote_counts().sum(&stream.id, Instant::now()),
            ViewerCount {
                watching: 2,
                connected: 3
            }
        );
        assert_eq!(stats.rejected.load(Ordering::Relaxed), hostile.len() as u64);
    }

    #[test]
    fn a_quiet_node_s_counts_are_dropped_and_nodes_are_capped() {
        let remote = RemoteCounts::new(Duration::from_secs(1));
        let s = StreamId("s".into());
        let one = |n| {
            HashMap::from([(
                s.clone(),
                ViewerCount {
                    watching: 0,
                    connected: n,
                },
            )])
        };
        let t0 = Instant::now();
        assert!(remote.update("b", one(2), t0));
        assert!(remote.update("c", one(5), t0 + Duration::from_secs(2)));
        assert_eq!(remote.sum(&s, t0 + Duration::from_secs(2)).connected, 7);
        assert_eq!(
            remote.sum(&s, t0 + Duration::from_secs(3)).connected,
            5,
            "b missed three periods"
        );
        let later = t0 + Duration::from_secs(10);
        for i in 0..MAX_NODES {
            assert!(remote.update(&format!("n{i}"), one(1), later));
        }
        assert!(!remote.update("one-too-many", one(1), later));
        assert_eq!(remote.sum(&s, later).connected, MAX_NODES);
        // Once the others go quiet, a new node is taken again.
        assert!(remote.update("newcomer", one(1), later + Duration::from_secs(4)));
    }
}
