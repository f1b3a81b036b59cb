//! The message bus between nodes (`bus.url`, NATS): messages go out wrapped with the sending
//! node's id, so that a node can tell its own from the others'; what comes in is checked (size,
//! shape) before anyone reads it.
//!
//! The bus never stops the node: publishing only queues (a full queue, or a bus that is down,
//! drops the message and counts it), and reconnecting, resubscribing included, is the NATS
//! client's job. What each message means is the business of whoever sends it (`live::nodes`).
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The largest message sent or read (NATS' own default limit is 1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Messages waiting to be handed to the NATS client.
const OUTBOX: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bus {url}: {message}")]
    Connect { url: String, message: String },
    #[error("bus: cannot subscribe to {subject}: {message}")]
    Subscribe { subject: String, message: String },
}

/// What the bus has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Times the connection to the bus was lost.
    pub disconnects: AtomicU64,
    pub published: AtomicU64,
    /// Not sent: the bus was down, the queue full, or the message too large.
    pub dropped: AtomicU64,
    /// Read from other nodes.
    pub received: AtomicU64,
    /// Unreadable: too large, not JSON, or not the expected shape.
    pub rejected: AtomicU64,
}

/// What travels: the sender's node id and its message.
#[derive(Serialize, Deserialize)]
struct Envelope<N, T> {
    node: N,
    body: T,
}

/// This node's connection to the bus.
pub struct Bus {
    node: String,
    client: async_nats::Client,
    outbox: mpsc::Sender<(String, Bytes)>,
    stats: Arc<Stats>,
    sender: JoinHandle<()>,
}

impl Bus {
    /// Connects in the background (the node starts whether the bus is up or not) as `node`.
    /// `ca`: the PEM root certificate(s) of the server's, instead of the system's; TLS is then
    /// required (as it is by a `tls://` URL).
    pub async fn connect(url: &str, node: &str, ca: Option<&Path>) -> Result<Bus, Error> {
        let stats = Arc::new(Stats::default());
        let events = stats.clone();
        let mut options = async_nats::ConnectOptions::new();
        if let Some(ca) = ca {
            options = options
                .add_root_certificates(ca.to_path_buf())
                .require_tls(true);
        }
        let client = options
            .name(node)
            // This node's own messages are not sent back to it (the envelope says so too).
            .no_echo()
            .retry_on_initial_connect()
            .event_callback(move |event| {
                let stats = events.clone();
                async move { on_event(&stats, event) }
            })
            .connect(url)
            .await
            .map_err(|e| Error::Connect {
                url: url.into(),
                message: e.to_string(),
            })?;
        let (outbox, mut queued) = mpsc::channel::<(String, Bytes)>(OUTBOX);
        let (publisher, published) = (client.clone(), stats.clone());
        let sender = tokio::spawn(async move {
            while let Some((subject, payload)) = queued.recv().await {
                match publisher.publish(subject, payload).await {
                    Ok(()) => published.published.fetch_add(1, Ordering::Relaxed),
                    Err(_) => published.dropped.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
        tracing::info!(url, node, "bus: NATS");
        Ok(Bus {
            node: node.into(),
            client,
            outbox,
            stats,
            sender,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Connected now (the client's own state: its events may arrive out of order).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Queues `body` for `subject`, never waiting: while the bus is down, or the queue is full,
    /// the message is dropped (and counted).
    pub fn publish<T: Serialize>(&self, subject: &str, body: &T) {
        let envelope = Envelope {
            node: &self.node,
            body,
        };
        let payload = serde_json::to_vec(&envelope).expect("bus messages serialise");
        if !self.is_connected() || payload.len() > MAX_MESSAGE_BYTES {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self
            .outbox
            .try_send((subject.to_string(), payload.into()))
            .is_err()
        {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The messages of `subject` (NATS wildcards allowed); read them with [`Bus::open`]. The
    /// subscription survives reconnects.
    pub async fn subscribe(&self, subject: &str) -> Result<async_nats::Subscriber, Error> {
        self.client
            .subscribe(subject.to_string())
            .await
            .map_err(|e| Error::Subscribe {
                subject: subject.into(),
                message: e.to_string(),
            })
    }

    /// The body of a message from another node, or `None` for this node's own and for anything
    /// unreadable (counted and logged).
    pub fn open<T: DeserializeOwned>(&self, payload: &[u8]) -> Option<(String, T)> {
        open(payload, &self.node, &self.stats)
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.sender.abort();
    }
}

fn on_event(stats: &Stats, event: async_nats::Event) {
    match event {
        async_nats::Event::Connected => tracing::info!("bus connected"),
        async_nats::Event::Disconnected => {
            stats.disconnects.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("bus disconnected; serving this node's sockets only until it is back");
        }
        other => tracing::warn!(event = %other, "bus"),
    }
}

/// Reads a message as [`Bus::open`] does, for node `own`.
pub fn open<T: DeserializeOwned>(payload: &[u8], own: &str, stats: &Stats) -> Option<(String, T)> {
    let rejected = |why: &str| {
        stats.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(bytes = payload.len(), why, "bus message dropped");
        None
    };
    if payload.len() > MAX_MESSAGE_BYTES {
        return rejected("too large");
    }
    let envelope: Envelope<String, T> = match serde_json::from_slice(payload) {
        Ok(e) => e,
        Err(_) => return rejected("not a message of this version"),
    };
    if envelope.node == own {
        return None;
    }
    stats.received.fetch_add(1, Ordering::Relaxed);
    Some((envelope.node, envelope.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Hello {
        n: u32,
    }

    #[test]
    fn messages_of_other_nodes_open_and_own_ones_and_junk_do_not() {
        let stats = Stats::default();
        let from = |node: &str| {
            serde_json::to_vec(&Envelope {
                node,
                body: Hello { n: 7 },
            })
            .unwrap()
        };
        assert_eq!(
            open::<Hello>(&from("b"), "a", &stats),
            Some(("b".into(), Hello { n: 7 }))
        );
        assert_eq!(open::<Hello>(&from("a"), "a", &stats), None);
        assert_eq!(stats.rejected.load(Ordering::Relaxed), 0);
        let huge = format!(
            r#"{{"node":"b","body":{{"n":1,"x":"{}"}}}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        for junk in [
            &b"\xff\xfe garbage"[..],
            br#"{"node":"b"}"#,
            br#"{"node":"b","body":{"n":"seven"}}"#,
            br#"[1,2,3]"#,
            huge.as_bytes(),
        ] {
            assert_eq!(open::<Hello>(junk, "a", &stats), None);
        }
        assert_eq!(stats.rejected.load(Ordering::Relaxed), 5);
        assert_eq!(stats.received.load(Ordering::Relaxed), 1);
    }
}
