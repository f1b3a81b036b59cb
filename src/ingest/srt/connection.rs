//! One SRT caller: stream id and key checked before the handshake is answered, then MPEG-TS in,
//! frames out, statistics once a second, until the publisher leaves or the server ends it.
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use srt_protocol::access::{RejectReason, ServerRejectReason};
use srt_protocol::packet::CoreRejectReason;
use srt_protocol::settings::KeySettings;
use srt_tokio::options::KeySize;
use srt_tokio::{ConnectionRequest, SocketStatistics, SrtSocket};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{Span, debug, info, warn};

use super::stats::srt_stats;
use super::ts_demux::{Demuxed, TsDemuxer};
use super::{PEER_IDLE_TIMEOUT, SrtConfig, key_size_name, stream_id};
use crate::ingest::{EndReason, Error, MediaFrame, MediaSink, Proto, Publishers};
use crate::store::stream_key::redact;

/// After the publisher leaves, how long the demuxer may take to hand over what it still holds.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// SRT messages (1316 bytes of TS each) handed to the demuxer at once, at most.
const MAX_BATCH: usize = 64;
/// Time allowed for telling a publisher we are closing (SRT shutdown packet).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

type EndedFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a publish ended.
#[derive(Debug)]
enum Exit {
    /// The publisher closed the connection (SRT shutdown).
    Closed,
    /// Nothing at all came from the publisher for the peer idle timeout.
    PeerLost(Duration),
    /// Connected, but no media for the idle timeout.
    Idle(Duration),
    /// The transport stream could not be demuxed.
    Demux(String),
    /// The server ended it: shutdown, the sink's `ended()`, or the sink refused a frame.
    ServerEnded(String),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Closed => f.write_str("connection closed by the publisher"),
            Exit::PeerLost(d) => write!(
                f,
                "no packets from the publisher for {:.1} s (connection lost)",
                d.as_secs_f64()
            ),
            Exit::Idle(d) => write!(f, "no media from the publisher for {} s", d.as_secs()),
            Exit::Demux(e) => write!(f, "demuxing failed: {e}"),
            Exit::ServerEnded(why) => write!(f, "ended by the server: {why}"),
        }
    }
}

/// Answers one handshake request and, once accepted, serves the connection until it ends.
pub(super) async fn serve<P: Publishers>(
    request: ConnectionRequest,
    publishers: Arc<P>,
    config: Arc<SrtConfig>,
    full: bool,
    shutdown: CancellationToken,
) {
    let peer = request.remote();
    if full {
        warn!(%peer, max = config.max_connections, "srt connection limit reached, rejecting");
        return reject(request, ServerRejectReason::Overload.into()).await;
    }
    let stream_id = request.stream_id().map(|s| s.as_str().to_owned());
    let key = match stream_id::publish_key(stream_id.as_deref()) {
        Ok(key) => key.to_owned(),
        Err(e) => {
            info!(reason = %e, "srt caller refused");
            let reason = match e {
                stream_id::StreamIdError::Mode(_) => ServerRejectReason::BadMode,
                _ => ServerRejectReason::BadRequest,
            };
            return reject(request, reason.into()).await;
        }
    };
    let redacted = redact(&key);
    Span::current().record("key", redacted.as_str());
    let key_settings = match key_settings(config.passphrase.as_deref(), request.key_size()) {
        Ok(settings) => settings,
        Err(why) => {
            info!(
                reason = why,
                encryption = key_size_name(request.key_size()),
                "srt caller refused"
            );
            return reject(request, CoreRejectReason::Unsecure.into()).await;
        }
    };
    let authorized = tokio::select! {
        biased;
        () = shutdown.cancelled() => return reject(request, ServerRejectReason::Down.into()).await,
        authorized = timeout(config.setup_timeout, publishers.authorize(&key, Proto::Srt)) => authorized,
    };
    let sink = match authorized {
        Err(_elapsed) => {
            warn!("stream key check timed out");
            return reject(request, ServerRejectReason::Down.into()).await;
        }
        Ok(Err(e)) => {
            info!(key = %redacted, reason = %e, "publish rejected");
            return reject(request, reject_reason(&e)).await;
        }
        Ok(Ok(sink)) => sink,
    };
    // The cipher is only checked here (srt-tokio gives us the caller's key material only on
    // accept): a wrong passphrase ends this publish before any media, and the stream stays ready.
    let socket = match timeout(config.setup_timeout, request.accept(key_settings)).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(e)) => {
            info!(error = %e, "srt handshake failed after the key check (wrong passphrase?)");
            sink.finish(EndReason::PublisherLost(format!(
                "srt handshake failed: {e}"
            )));
            return;
        }
        Err(_elapsed) => {
            info!("srt handshake did not complete");
            sink.finish(EndReason::PublisherLost("srt handshake timed out".into()));
            return;
        }
    };
    let demux = match TsDemuxer::start(&format!("srt-ingest-{peer}")) {
        Ok(demux) => demux,
        Err(e) => {
            warn!(error = %e, "could not start the srt demuxer");
            sink.finish(EndReason::PublisherLost(format!("demuxer: {e}")));
            return;
        }
    };
    info!(
        latency_ms = socket.settings().recv_tsbpd_latency.as_millis() as u64,
        "publishing"
    );
    Publishing::new(socket, demux, sink, &config)
        .run(&shutdown)
        .await;
}

async fn reject(request: ConnectionRequest, reason: RejectReason) {
    if let Err(e) = request.reject(reason).await {
        debug!(error = %e, "could not send the srt rejection");
    }
}

/// The key settings for a caller announcing `size`, or why it is refused.
fn key_settings(
    passphrase: Option<&str>,
    size: KeySize,
) -> Result<Option<KeySettings>, &'static str> {
    match (passphrase, size) {
        (None, KeySize::Unspecified) => Ok(None),
        (None, _) => Err("the publisher encrypts but this server has no passphrase"),
        (Some(_), KeySize::Unspecified) => Err("this server requires a passphrase"),
        (Some(p), size) => {
            let passphrase = p
                .to_owned()
                .try_into()
                .map_err(|_| "configured passphrase is invalid")?;
            Ok(Some(KeySettings {
                key_size: size,
                passphrase,
            }))
        }
    }
}

/// SRT access-control rejection codes (2400…: the HTTP status + 2000 of the same meaning).
fn reject_reason(e: &Error) -> RejectReason {
    match e {
        Error::BadStreamKey(_) | Error::StreamEnded(_) | Error::Ended(_) => {
            ServerRejectReason::Forbidden.into()
        }
        Error::AlreadyLive(_) | Error::LiveOnAnotherNode(_) => ServerRejectReason::Conflict.into(),
        Error::Pipeline(_) | Error::Store(_) => ServerRejectReason::InternalServerError.into(),
    }
}

/// An accepted publisher.
struct Publishing<S> {
    socket: SrtSocket,
    demux: TsDemuxer,
    sink: S,
    ended: EndedFuture,
    idle_timeout: Duration,
    latency_ms: u64,
    /// Round trip measured during the handshake.
    handshake_rtt: Duration,
    /// When anything (data, keepalive) last came from the publisher, as far as we can tell.
    last_heard: Instant,
    last_stats: Option<(Instant, SocketStatistics)>,
    frames: u64,
    ts_bytes: u64,
    /// SRT messages received, and how many hand-overs to the demuxer they took.
    ts_messages: u64,
    ts_pushes: u64,
}

impl<S: MediaSink> Publishing<S> {
    fn new(socket: SrtSocket, demux: TsDemuxer, sink: S, config: &SrtConfig) -> Self {
        let ended: EndedFuture = Box::pin(sink.ended());
        Publishing {
            latency_ms: socket.settings().recv_tsbpd_latency.as_millis() as u64,
            handshake_rtt: socket.settings().rtt,
            socket,
            demux,
            sink,
            ended,
            idle_timeout: config.idle_timeout,
            last_heard: Instant::now(),
            last_stats: None,
            frames: 0,
            ts_bytes: 0,
            ts_messages: 0,
            ts_pushes: 0,
        }
    }

    async fn run(mut self, shutdown: &CancellationToken) {
        let exit = self.serve(shutdown).await;
        if matches!(exit, Exit::Closed | Exit::PeerLost(_) | Exit::Idle(_)) {
            self.drain().await;
        }
        if matches!(exit, Exit::ServerEnded(_) | Exit::Idle(_) | Exit::Demux(_))
            && timeout(CLOSE_TIMEOUT, self.socket.close()).await.is_err()
        {
            debug!("srt close timed out");
        }
        let Publishing {
            socket,
            demux,
            sink,
            frames,
            ts_bytes,
            ts_messages,
            ts_pushes,
            ..
        } = self;
        drop(socket);
        demux.close().await;
        let reason = match &exit {
            Exit::Closed => EndReason::PublisherStopped,
            Exit::ServerEnded(_) => EndReason::ServerEnded,
            Exit::PeerLost(_) | Exit::Idle(_) | Exit::Demux(_) => {
                EndReason::PublisherLost(exit.to_string())
            }
        };
        info!(
            reason = %exit,
            frames,
            ts_bytes,
            ts_messages,
            ts_pushes,
            "publish ended"
        );
        sink.finish(reason);
    }

    async fn serve(&mut self, shutdown: &CancellationToken) -> Exit {
        let mut stats = self.socket.statistics().clone();
        // Media, not bytes: a caller that sends keepalives only, or bytes that are no H.264/AAC
        // transport stream, does not hold its stream key for longer than this.
        let media_deadline = tokio::time::sleep(self.idle_timeout);
        tokio::pin!(media_deadline);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Exit::ServerEnded("server shutting down".into()),
                () = &mut self.ended => return Exit::ServerEnded("stream ended".into()),
                () = &mut media_deadline => return Exit::Idle(self.idle_timeout),
                demuxed = self.demux.next() => match demuxed {
                    Demuxed::Frame(frame) => {
                        if matches!(frame, MediaFrame::Video { .. } | MediaFrame::Audio { .. }) {
                            media_deadline
                                .as_mut()
                                .reset(Instant::now() + self.idle_timeout);
                        }
                        if let Err(e) = self.push(frame) {
                            return e;
                        }
                    }
                    Demuxed::TrackEnded => {}
                    Demuxed::Error(e) => return Exit::Demux(e),
                },
                data = self.socket.next() => match data {
                    Some(Ok((_, bytes))) => {
                        self.last_heard = Instant::now();
                        // SRT releases a video frame's packets together: hand them over at once.
                        let mut batch = vec![bytes];
                        while batch.len() < MAX_BATCH {
                            match self.socket.next().now_or_never() {
                                Some(Some(Ok((_, more)))) => batch.push(more),
                                _ => break,
                            }
                        }
                        self.ts_bytes += batch.iter().map(|b| b.len() as u64).sum::<u64>();
                        self.ts_messages += batch.len() as u64;
                        self.ts_pushes += 1;
                        if let Err(e) = self.demux.push(batch) {
                            return Exit::Demux(e);
                        }
                    }
                    Some(Err(e)) => {
                        debug!(error = %e, "srt socket error");
                        return Exit::PeerLost(self.quiet_for());
                    }
                    None => {
                        // srt-tokio ends the stream the same way for a shutdown packet and for
                        // a peer that went silent; silence for most of the peer idle timeout
                        // tells them apart.
                        let quiet = self.quiet_for();
                        return if quiet >= PEER_IDLE_TIMEOUT / 2 {
                            Exit::PeerLost(quiet)
                        } else {
                            Exit::Closed
                        };
                    }
                },
                Some(s) = stats.next() => {
                    if let Err(e) = self.on_stats(s) {
                        return e;
                    }
                }
            }
        }
    }

    fn quiet_for(&self) -> Duration {
        self.last_heard.elapsed()
    }

    fn push(&mut self, frame: MediaFrame) -> Result<(), Exit> {
        self.sink
            .push(frame)
            .map_err(|e| Exit::ServerEnded(format!("sink refused a frame: {e}")))?;
        self.frames += 1;
        Ok(())
    }

    fn on_stats(&mut self, s: SocketStatistics) -> Result<(), Exit> {
        let now = Instant::now();
        if self
            .last_stats
            .as_ref()
            .is_some_and(|(_, prev)| s.rx_all_packets > prev.rx_all_packets)
        {
            self.last_heard = now;
        }
        let prev = self
            .last_stats
            .as_ref()
            .map(|(at, prev)| (prev, now.duration_since(*at)));
        let stats = srt_stats(&s, prev, self.handshake_rtt, self.latency_ms);
        self.last_stats = Some((now, s));
        self.push(MediaFrame::SrtStats(stats))
    }

    /// Hands over what the demuxer still holds once the publisher is gone.
    async fn drain(&mut self) {
        self.demux.end();
        let tracks = self.demux.tracks();
        let mut ended = 0;
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while ended < tracks {
            match timeout_at(deadline, self.demux.next()).await {
                Err(_elapsed) => {
                    debug!(tracks, ended, "srt demuxer did not finish draining in time");
                    return;
                }
                Ok(Demuxed::Frame(frame)) => {
                    if self.push(frame).is_err() {
                        return;
                    }
                }
                Ok(Demuxed::TrackEnded) => ended += 1,
                Ok(Demuxed::Error(e)) => {
                    debug!(error = %e, "srt demuxer failed while draining");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_must_match_on_both_sides() {
        assert_eq!(key_settings(None, KeySize::Unspecified), Ok(None));
        assert!(key_settings(None, KeySize::AES128).is_err());
        assert!(key_settings(Some("0123456789"), KeySize::Unspecified).is_err());
        let ks = key_settings(Some("0123456789"), KeySize::AES256)
            .unwrap()
            .unwrap();
        assert_eq!(ks.key_size, KeySize::AES256);
    }
}
