//! SRT ingest: one UDP port, many publishers, routed by the `streamid` of their handshake.
//!
//! The protocol (handshake, ARQ, TSBPD, AES) is srt-tokio's multiplexed listener; this module
//! brings the UDP socket, one task per caller, the stream-key check through
//! [`Publishers::authorize`] *before* the handshake is answered (a refused caller gets an SRT
//! rejection reason and costs no pipeline), and the MPEG-TS demuxing into
//! [`MediaFrame`](crate::ingest::MediaFrame)s.
//!
//! Publish URL: `srt://host:8890?streamid=publish:KEY` (ffmpeg adds `&latency=…` in
//! microseconds, OBS and phone apps take the URL as is). See [`stream_id`] for the other forms.
mod connection;
mod stats;
pub mod stream_id;
pub(crate) mod ts_demux;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use srt_tokio::SrtListener;
use srt_tokio::options::{ByteCount, KeySize, Passphrase};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, warn};

use crate::ingest::Publishers;

/// Answering the handshake (key check included) must complete within this.
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A connected publisher that sends no media for this long is dropped (as RTMP).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Callers beyond this are rejected at the handshake.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// No packet at all (not even a keepalive) for this long and SRT calls the peer gone: this is
/// how a publisher that vanished (network down, killed) is noticed. libsrt's default.
pub const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often connection statistics are taken (and sent to ingest health).
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Asked of the kernel for the UDP socket (it clamps to `net.core.rmem_max`): several publishers'
/// bursts must fit between two reads.
const UDP_BUFFER_BYTES: usize = 8 * 1024 * 1024;
/// Pause before binding again after the listener stopped on its own.
const REBIND_BACKOFF: Duration = Duration::from_secs(1);

/// Settings of the SRT server. `Default` gives the `DEFAULT_*` values and no encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtConfig {
    pub latency: Duration,
    /// AES passphrase (10–79 characters) every publisher must use; `None` = no encryption.
    pub passphrase: Option<String>,
    pub setup_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for SrtConfig {
    fn default() -> Self {
        SrtConfig {
            latency: crate::config::DEFAULT_SRT_LATENCY,
            passphrase: None,
            setup_timeout: DEFAULT_SETUP_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("srt socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("srt passphrase: {0}")]
    Passphrase(String),
    #[error("gstreamer (demuxes srt publishers): {0}")]
    Gst(String),
}

/// A bound SRT listener; [`SrtServer::run`] serves it.
pub struct SrtServer {
    local_addr: SocketAddr,
    config: Arc<SrtConfig>,
    listener: Listener,
}

/// srt-tokio's listener and its stream of handshake requests.
struct Listener {
    /// Kept alive: dropping it stops the listener task.
    _listener: SrtListener,
    incoming: srt_tokio::SrtIncoming,
}

impl SrtServer {
    /// Binds UDP `addr` (port 0 picks a free port; see [`SrtServer::local_addr`]). Initialises
    /// GStreamer, which demuxes the publishers' transport streams.
    pub async fn bind(addr: SocketAddr, config: SrtConfig) -> Result<SrtServer, Error> {
        gstreamer::init().map_err(|e| Error::Gst(e.to_string()))?;
        if let Some(p) = &config.passphrase {
            Passphrase::try_from(p.clone()).map_err(|e| Error::Passphrase(e.to_string()))?;
        }
        let (listener, local_addr) = listen(addr, &config).await?;
        Ok(SrtServer {
            local_addr,
            config: Arc::new(config),
            listener,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn config(&self) -> &SrtConfig {
        &self.config
    }

    /// Serves callers until `shutdown` is cancelled; one task per caller, all owned by a JoinSet
    /// that is drained (connections told to stop) before returning.
    pub async fn run<P: Publishers>(self, publishers: Arc<P>, shutdown: CancellationToken) {
        let Self {
            local_addr,
            config,
            mut listener,
        } = self;
        info!(addr = %local_addr, latency_ms = config.latency.as_millis() as u64, encrypted = config.passphrase.is_some(), "srt ingest listening");
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    super::log_connection_end(super::Proto::Srt, joined);
                }
                request = listener.incoming.incoming().next() => match request {
                    Some(request) => {
                        let span = tracing::info_span!(
                            "srt",
                            peer = %request.remote(),
                            key = tracing::field::Empty,
                        );
                        let full = connections.len() >= config.max_connections;
                        let task = connection::serve(
                            request,
                            Arc::clone(&publishers),
                            Arc::clone(&config),
                            full,
                            shutdown.child_token(),
                        );
                        connections.spawn(task.instrument(span));
                    }
                    None => {
                        // srt-tokio's listener task ended without being asked to (it panics on
                        // some malformed handshakes): its connections are gone; listen again.
                        error!(addr = %local_addr, "srt listener stopped unexpectedly, binding again");
                        listener = loop {
                            tokio::select! {
                                () = shutdown.cancelled() => break None,
                                () = tokio::time::sleep(REBIND_BACKOFF) => {}
                            }
                            match listen(local_addr, &config).await {
                                Ok((l, _)) => break Some(l),
                                Err(e) => warn!(error = %e, "srt listener could not bind again"),
                            }
                        }
                        .unwrap_or(listener);
                    }
                },
            }
        }
        drop(listener);
        debug!(
            connections = connections.len(),
            "srt ingest stopping, draining connections"
        );
        while let Some(joined) = connections.join_next().await {
            super::log_connection_end(super::Proto::Srt, joined);
        }
        info!(addr = %local_addr, "srt ingest stopped");
    }
}

/// Binds the UDP socket (with a large receive buffer) and starts srt-tokio's listener on it.
async fn listen(addr: SocketAddr, config: &SrtConfig) -> Result<(Listener, SocketAddr), Error> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_nonblocking(true)?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_BUFFER_BYTES) {
        debug!(error = %e, "could not enlarge the srt receive buffer");
    }
    socket.bind(&addr.into())?;
    let socket = tokio::net::UdpSocket::from_std(socket.into())?;
    let local_addr = socket.local_addr()?;
    let (listener, incoming) = SrtListener::builder()
        .socket(socket)
        .set(|o| {
            o.receiver.latency = config.latency;
            o.sender.peer_latency = config.latency;
            o.session.peer_idle_timeout = PEER_IDLE_TIMEOUT;
            o.session.statistics_interval = STATS_INTERVAL;
            o.connect.udp_recv_buffer_size = ByteCount(UDP_BUFFER_BYTES as u64);
        })
        .bind(local_addr)
        .await?;
    Ok((
        Listener {
            _listener: listener,
            incoming,
        },
        local_addr,
    ))
}

/// The key size to use with a caller that announced `size` (the listener follows the caller).
pub(crate) fn key_size_name(size: KeySize) -> &'static str {
    match size {
        KeySize::Unspecified => "none",
        KeySize::AES128 => "aes-128",
        KeySize::AES192 => "aes-192",
        KeySize::AES256 => "aes-256",
    }
}
