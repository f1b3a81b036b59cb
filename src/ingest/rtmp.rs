//! RTMP ingest: terminates publishers (OBS, ffmpeg, GStreamer `rtmp2sink`) in Rust.
//!
//! The protocol work (handshake, chunking, AMF commands) is rml_rtmp's sans-IO state machines; this
//! module brings the TCP listener, one task per connection, timeouts, the stream-key check through
//! [`Publishers::authorize`] and FLV tag parsing into [`MediaFrame`](crate::ingest::MediaFrame)s.
//!
//! OBS: server `rtmp://host:1935/live`, stream key = the key. Any other app name is accepted too
//! (and logged); the key is the publish stream name without any `?query` suffix.
//!
//! RTMPS is the same server behind TLS ([`RtmpServer::with_tls`]): a second listener whose
//! connections finish a TLS handshake, within the same setup deadline, before RTMP starts.
mod admission;
mod connection;
pub mod flv;
mod metadata;
mod timestamp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use crate::ingest::Publishers;

/// Handshake + connect + publish (including the key check) must complete within this (encoders
/// need well under a second; idle sockets must not hold a slot for long).
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Once publishing, a connection that sends no bytes for this long is dropped.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A write to a publisher (handshake and command responses) that does not finish within this
/// drops the connection.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections in all; when full, the oldest one that has not published yet makes room, and
/// only when every slot is publishing is a new connection closed right after accept.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Connections from one address that have not published yet; a newer one evicts the oldest.
pub const DEFAULT_MAX_PENDING_PER_ADDRESS: usize = 8;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Limits of the RTMP server. `Default` gives the `DEFAULT_*` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpConfig {
    /// Handshake + connect + publish must complete within this after accept.
    pub setup_timeout: Duration,
    /// Silence allowed from a publishing connection.
    pub idle_timeout: Duration,
    /// Time allowed for one write to the peer.
    pub write_timeout: Duration,
    /// Simultaneous connections (publishing or not).
    pub max_connections: usize,
    /// Simultaneous connections from one address that have not published yet.
    pub max_pending_per_address: usize,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        Self {
            setup_timeout: DEFAULT_SETUP_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_pending_per_address: DEFAULT_MAX_PENDING_PER_ADDRESS,
        }
    }
}

/// A bound RTMP listener; [`RtmpServer::run`] serves it.
pub struct RtmpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: RtmpConfig,
    tls: Option<TlsAcceptor>,
}

impl RtmpServer {
    /// Binds `addr` (port 0 picks a free port; see [`RtmpServer::local_addr`]) with the default
    /// [`RtmpConfig`].
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            config: RtmpConfig::default(),
            tls: None,
        })
    }

    /// Serves RTMPS: every connection is TLS (`rtmps://`).
    pub fn with_tls(mut self, config: tokio_rustls::rustls::ServerConfig) -> Self {
        self.tls = Some(TlsAcceptor::from(Arc::new(config)));
        self
    }

    /// Replaces the limits (timeouts, connection cap).
    pub fn with_config(mut self, config: RtmpConfig) -> Self {
        self.config = config;
        self
    }

    pub fn config(&self) -> &RtmpConfig {
        &self.config
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts connections until `shutdown` is cancelled; one task per connection, all owned
    /// by a JoinSet that is drained (connections told to stop) before returning.
    pub async fn run<P: Publishers>(self, publishers: Arc<P>, shutdown: CancellationToken) {
        let Self {
            listener,
            local_addr,
            config,
            tls,
        } = self;
        let proto = if tls.is_some() { "rtmps" } else { "rtmp" };
        info!(addr = %local_addr, proto, "rtmp ingest listening");
        let mut connections = JoinSet::new();
        let admission =
            admission::Admission::new(config.max_connections, config.max_pending_per_address);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    super::log_connection_end(super::Proto::Rtmp, joined);
                }
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        let accepted = tokio::time::Instant::now();
                        let Some(ticket) = admission.admit(peer.ip()) else {
                            warn!(
                                %peer,
                                max = config.max_connections,
                                "rtmp connection limit reached (all publishing), closing new connection"
                            );
                            drop(socket);
                            continue;
                        };
                        let span = tracing::info_span!(
                            "rtmp",
                            %peer,
                            proto,
                            app = tracing::field::Empty,
                            key = tracing::field::Empty,
                        );
                        // Handshake and command responses are small and latency matters more
                        // than packing them.
                        if let Err(e) = socket.set_nodelay(true) {
                            debug!(error = %e, "could not set TCP_NODELAY");
                        }
                        let (publishers, config, tls) =
                            (Arc::clone(&publishers), config.clone(), tls.clone());
                        let stop = shutdown.child_token();
                        let task = async move {
                            let socket: Box<dyn connection::Socket> = match tls {
                                None => Box::new(socket),
                                Some(tls) => {
                                    let deadline = accepted + config.setup_timeout;
                                    let handshake = tokio::time::timeout_at(deadline, tls.accept(socket));
                                    let handshake = tokio::select! {
                                        done = handshake => done,
                                        () = stop.cancelled() => return,
                                    };
                                    match handshake {
                                        Ok(Ok(socket)) => Box::new(socket),
                                        Ok(Err(e)) => {
                                            info!(error = %e, "rtmps: TLS handshake failed");
                                            return;
                                        }
                                        Err(_) => {
                                            info!("rtmps: TLS handshake timed out");
                                            return;
                                        }
                                    }
                                }
                            };
                            connection::serve(socket, accepted, publishers, config, ticket, stop)
                                .await;
                        };
                        connections.spawn(task.instrument(span));
                    }
                    Err(e) => {
                        warn!(error = %e, "rtmp accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    }
                },
            }
        }
        drop(listener);
        // Each connection holds a child token of `shutdown`, so they are all stopping now.
        debug!(
            connections = connections.len(),
            "rtmp ingest stopping, draining connections"
        );
        while let Some(joined) = connections.join_next().await {
            super::log_connection_end(super::Proto::Rtmp, joined);
        }
        info!(addr = %local_addr, proto, "rtmp ingest stopped");
    }
}
