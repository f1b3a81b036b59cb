//! What the live channel says to the other nodes over the bus (`bus.url`): the messages, the
//! rule of which live events cross, and the other nodes' audience counts as this node keeps them.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::ViewerCount;
use crate::store::StreamId;
/// Live events larger than this are not taken from the bus (a chat message is at most a few KiB).
pub(super) const MAX_EVENT_BYTES: usize = 64 * 1024;
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
pub(super) fn event_type(event: &str) -> Option<&str> {
    let rest = event.strip_prefix(r#"{"type":""#)?;
    Some(&rest[..rest.find('"')?])
}

/// Whether a serialised live event goes to the other nodes too.
pub fn crosses_nodes(event: &str) -> bool {
    event_type(event).is_some_and(|t| CROSSING.contains(&t))
}

/// A live event from another node, if it is one that crosses, whole JSON, and not too large.
pub(super) fn checked_event(event: &str) -> Option<&str> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
