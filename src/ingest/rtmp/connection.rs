//! One RTMP connection: handshake → connect → publish (key checked) → media, all in one task.
//!
//! All reads, the session state machine, the sink and every write to the peer live in this one
//! task, so outbound packets keep their order and nothing needs a channel. Memory per connection
//! is bounded by the read buffer, the handshake (3 KiB) and rml_rtmp's reassembly of one RTMP
//! message (at most 16 MiB, the 24-bit message length).
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{Span, debug, info, warn};

use super::RtmpConfig;
use super::admission::Ticket;
use super::flv::{self, AudioTag, VideoTag};
use super::metadata;
use super::timestamp::TimestampUnwrapper;
use crate::ingest::{EndReason, Error, MediaFrame, MediaSink, Proto, Publishers, StreamMetadata};
use crate::store::stream_key::redact;

/// The app name OBS and our docs use (`rtmp://host:1935/live`). Others are accepted and logged.
const EXPECTED_APP: &str = "live";
/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Bytes a peer may send before its publish is accepted: the handshake (3 KiB) and a handful of
/// commands need far less. Stops unauthenticated peers from making rml_rtmp reassemble large
/// messages.
const MAX_SETUP_BYTES: u64 = 256 * 1024;
/// Above this the outbound buffer is given back after a flush (it normally holds a few packets).
const OUT_BUFFER_KEEP_BYTES: usize = 64 * 1024;

type EndedFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a connection reads and writes: TCP, or TLS over TCP (RTMPS).
pub(super) trait Socket: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for T {}

/// Serves one accepted connection until it ends; never panics on what the peer sends. The
/// setup deadline counts from `accepted` (a TLS handshake before this spends from it too).
pub(super) async fn serve<P: Publishers>(
    socket: Box<dyn Socket>,
    accepted: Instant,
    publishers: Arc<P>,
    config: RtmpConfig,
    ticket: Ticket,
    shutdown: CancellationToken,
) {
    let mut conn = Connection::<P::Sink>::new(socket, accepted, config, ticket);
    let exit = conn.run(&*publishers, &shutdown).await;
    conn.close(exit).await;
}

/// Why a connection ends.
#[derive(Debug)]
enum Exit {
    /// Not an RTMP client (bad handshake).
    Handshake(String),
    /// An RTMP client that broke the protocol.
    Protocol(String),
    /// The peer closed the connection.
    Eof,
    /// A socket error.
    Io(String),
    /// Nothing arrived (or could be written) in time.
    Timeout(Stall),
    /// The publisher sent deleteStream/closeStream for its stream.
    Unpublished,
    /// We said no (bad key, playback request); already answered and logged.
    Refused,
    /// The server ended it: shutdown, the sink's `ended()`, or the sink refused a frame.
    ServerEnded(String),
}

#[derive(Debug, Clone, Copy)]
enum Stall {
    Setup,
    Idle,
    Write,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Handshake(e) => write!(f, "handshake failed: {e}"),
            Exit::Protocol(e) => write!(f, "protocol error: {e}"),
            Exit::Eof => f.write_str("connection closed by the publisher"),
            Exit::Io(e) => write!(f, "socket error: {e}"),
            Exit::Timeout(Stall::Setup) => f.write_str("handshake, connect and publish timed out"),
            Exit::Timeout(Stall::Idle) => f.write_str("no data from the publisher (idle timeout)"),
            Exit::Timeout(Stall::Write) => f.write_str("write to the publisher timed out"),
            Exit::Unpublished => f.write_str("publisher stopped the stream"),
            Exit::Refused => f.write_str("request refused"),
            Exit::ServerEnded(why) => write!(f, "ended by the server: {why}"),
        }
    }
}

enum Phase {
    Handshake(Box<Handshake>),
    Session(Box<ServerSession>),
}

/// State that exists only while an authorized publish is running.
struct Publishing<S> {
    sink: S,
    ended: EndedFuture,
    video_ts: TimestampUnwrapper,
    audio_ts: TimestampUnwrapper,
    frames: u64,
    dropped_tags: u64,
    /// What the publisher's metadata announced last, corrected by what is dropped.
    metadata: StreamMetadata,
    /// Video or audio in a codec this server does not take is dropped: that track will not come,
    /// whatever the metadata says (the stream then starts without waiting for it).
    video_dropped: bool,
    audio_dropped: bool,
}

impl<S: MediaSink> Publishing<S> {
    fn push(&mut self, frame: MediaFrame) -> Result<(), Exit> {
        self.sink
            .push(frame)
            .map_err(|e| Exit::ServerEnded(format!("sink refused a frame: {e}")))?;
        self.frames += 1;
        Ok(())
    }

    /// Passes the metadata on, without the tracks that are dropped.
    fn announce(&mut self, mut metadata: StreamMetadata) -> Result<(), Exit> {
        if self.video_dropped {
            metadata.has_video = Some(false);
        }
        if self.audio_dropped {
            metadata.has_audio = Some(false);
        }
        self.metadata = metadata.clone();
        self.push(MediaFrame::Metadata(metadata))
    }
}

struct Connection<S> {
    socket: Box<dyn Socket>,
    config: RtmpConfig,
    /// The connection's slot; it stops being evictable once publishing.
    ticket: Ticket,
    setup_deadline: Instant,
    phase: Phase,
    /// Outbound bytes in the order the session produced them; flushed after each input batch.
    out: Vec<u8>,
    /// Bytes received before publishing started (bounded by `MAX_SETUP_BYTES`).
    setup_bytes: u64,
    publishing: Option<Publishing<S>>,
    /// The publisher sent FCUnpublish: a close that follows is a stop, not a drop.
    unpublishing: bool,
    warned_video_codec: bool,
    warned_audio_codec: bool,
}

impl<S: MediaSink> Connection<S> {
    fn new(socket: Box<dyn Socket>, accepted: Instant, config: RtmpConfig, ticket: Ticket) -> Self {
        Self {
            socket,
            ticket,
            setup_deadline: accepted + config.setup_timeout,
            config,
            phase: Phase::Handshake(Box::new(Handshake::new(PeerType::Server))),
            out: Vec::new(),
            setup_bytes: 0,
            publishing: None,
            unpublishing: false,
            warned_video_codec: false,
            warned_audio_codec: false,
        }
    }

    async fn run<P: Publishers<Sink = S>>(
        &mut self,
        publishers: &P,
        shutdown: &CancellationToken,
    ) -> Exit {
        let mut buf = vec![0u8; READ_CHUNK_BYTES];
        loop {
            let (deadline, stall) = if self.publishing.is_some() {
                (Instant::now() + self.config.idle_timeout, Stall::Idle)
            } else {
                (self.setup_deadline, Stall::Setup)
            };
            let n = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    return Exit::ServerEnded("server shutting down".into());
                }
                () = self.ticket.evicted.cancelled(), if self.publishing.is_none() => {
                    return Exit::ServerEnded("made room for a newer connection before publishing".into());
                }
                () = wait_ended(&mut self.publishing) => {
                    return Exit::ServerEnded("stream ended".into());
                }
                read = timeout_at(deadline, self.socket.read(&mut buf)) => match read {
                    Err(_elapsed) => return Exit::Timeout(stall),
                    Ok(Ok(0)) => return Exit::Eof,
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => return Exit::Io(e.to_string()),
                },
            };
            let Some(input) = buf.get(..n) else {
                return Exit::Io("read reported more bytes than the buffer holds".into());
            };
            if self.publishing.is_none() {
                self.setup_bytes = self.setup_bytes.saturating_add(n as u64);
                if self.setup_bytes > MAX_SETUP_BYTES {
                    return Exit::Protocol(format!(
                        "more than {MAX_SETUP_BYTES} bytes before publishing"
                    ));
                }
            }
            if let Err(exit) = self.handle_input(input, publishers, shutdown).await {
                return exit;
            }
        }
    }

    async fn handle_input<P: Publishers<Sink = S>>(
        &mut self,
        input: &[u8],
        publishers: &P,
        shutdown: &CancellationToken,
    ) -> Result<(), Exit> {
        let results = match &mut self.phase {
            Phase::Session(session) => {
                guarded(|| session.handle_input(input)).map_err(Exit::Protocol)?
            }
            Phase::Handshake(handshake) => {
                match guarded(|| handshake.process_bytes(input)).map_err(Exit::Handshake)? {
                    HandshakeProcessResult::InProgress { response_bytes } => {
                        self.out.extend_from_slice(&response_bytes);
                        Vec::new()
                    }
                    HandshakeProcessResult::Completed {
                        response_bytes,
                        remaining_bytes,
                    } => {
                        self.out.extend_from_slice(&response_bytes);
                        let (mut session, mut results) =
                            guarded(|| ServerSession::new(ServerSessionConfig::new()))
                                .map_err(Exit::Protocol)?;
                        if !remaining_bytes.is_empty() {
                            let more = guarded(|| session.handle_input(&remaining_bytes))
                                .map_err(Exit::Protocol)?;
                            results.extend(more);
                        }
                        self.phase = Phase::Session(Box::new(session));
                        debug!("rtmp handshake complete");
                        results
                    }
                }
            }
        };
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    self.out.extend_from_slice(&packet.bytes);
                }
                ServerSessionResult::RaisedEvent(event) => {
                    self.on_event(event, publishers, shutdown).await?;
                }
                ServerSessionResult::UnhandleableMessageReceived(payload) => {
                    debug!(type_id = payload.type_id, "ignoring unhandled rtmp message");
                }
            }
        }
        self.flush().await
    }

    async fn on_event<P: Publishers<Sink = S>>(
        &mut self,
        event: ServerSessionEvent,
        publishers: &P,
        shutdown: &CancellationToken,
    ) -> Result<(), Exit> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                Span::current().record("app", app_name.as_str());
                if app_name == EXPECTED_APP {
                    debug!("rtmp connect");
                } else {
                    info!(app = %app_name, "rtmp connect to an app other than \"live\", accepting");
                }
                let results = self.session_call(|s| s.accept_request(request_id))?;
                self.queue(results);
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                self.on_publish(request_id, &stream_key, publishers, shutdown)
                    .await?;
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if self.publishing.is_some() {
                    return Err(Exit::Unpublished);
                }
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Some(p) = self.publishing.as_mut() {
                    p.announce(metadata::from_rtmp(&metadata))?;
                }
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => self.on_video(&data, timestamp.value)?,
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => self.on_audio(&data, timestamp.value)?,
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                info!("rtmp play requested; this server only takes publishers");
                return self
                    .refuse(
                        request_id,
                        "NetStream.Play.Failed",
                        "playback is not offered over rtmp",
                    )
                    .await;
            }
            ServerSessionEvent::UnhandleableAmf0Command { command_name, .. } => {
                // releaseStream, FCPublish, FCUnpublish, ...: nothing waits for an answer. But
                // FCUnpublish is how rtmp2sink says it stops on purpose (its deleteStream comes as
                // the socket closes and may not be read): the close that follows is a stop.
                if command_name == "FCUnpublish" {
                    self.unpublishing = true;
                }
                debug!(command = %command_name, "ignoring amf0 command");
            }
            // Chunk size changes are applied inside the session; acks and pings need nothing.
            // Events carrying a stream key are not logged whole on purpose.
            ServerSessionEvent::ClientChunkSizeChanged { .. }
            | ServerSessionEvent::ReleaseStreamRequested { .. }
            | ServerSessionEvent::PlayStreamFinished { .. }
            | ServerSessionEvent::AcknowledgementReceived { .. }
            | ServerSessionEvent::PingResponseReceived { .. } => {}
        }
        Ok(())
    }

    async fn on_publish<P: Publishers<Sink = S>>(
        &mut self,
        request_id: u32,
        stream_name: &str,
        publishers: &P,
        shutdown: &CancellationToken,
    ) -> Result<(), Exit> {
        if self.publishing.is_some() {
            info!("second publish on one connection refused");
            let results = self.session_call(|s| {
                s.reject_request(
                    request_id,
                    "NetStream.Publish.BadName",
                    "this connection is already publishing",
                )
            })?;
            self.queue(results);
            return Ok(());
        }
        // Some encoders append `?query` (e.g. auth parameters) to the stream name.
        let key = stream_name
            .split_once('?')
            .map_or(stream_name, |(key, _query)| key);
        let redacted = redact(key);
        Span::current().record("key", redacted.as_str());
        if key.is_empty() {
            info!("publish without a stream key refused");
            return self
                .refuse(
                    request_id,
                    "NetStream.Publish.BadName",
                    "missing stream key",
                )
                .await;
        }
        let authorized = tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                return Err(Exit::ServerEnded("server shutting down".into()));
            }
            authorized = timeout_at(
                self.setup_deadline,
                publishers.authorize(key, Proto::Rtmp),
            ) => authorized,
        };
        let sink = match authorized {
            Err(_elapsed) => return Err(Exit::Timeout(Stall::Setup)),
            Ok(Err(e)) => {
                info!(key = %redacted, reason = %e, "publish rejected");
                return self
                    .refuse(request_id, reject_code(&e), &e.to_string())
                    .await;
            }
            Ok(Ok(sink)) => sink,
        };
        let results = match self.session_call(|s| s.accept_request(request_id)) {
            Ok(results) => results,
            Err(exit) => {
                sink.finish(EndReason::PublisherLost(exit.to_string()));
                return Err(exit);
            }
        };
        self.queue(results);
        let ended: EndedFuture = Box::pin(sink.ended());
        self.ticket.publishing();
        self.publishing = Some(Publishing {
            sink,
            ended,
            video_ts: TimestampUnwrapper::new(),
            audio_ts: TimestampUnwrapper::new(),
            frames: 0,
            dropped_tags: 0,
            metadata: StreamMetadata::default(),
            video_dropped: false,
            audio_dropped: false,
        });
        info!("publishing");
        Ok(())
    }

    fn on_video(&mut self, body: &Bytes, raw_ts: u32) -> Result<(), Exit> {
        // Media for a connection that is not publishing is ignored.
        let Some(p) = self.publishing.as_mut() else {
            return Ok(());
        };
        let frame = match flv::parse_video(body) {
            Ok(VideoTag::SequenceHeader { codec, record }) => {
                MediaFrame::VideoConfig { codec, record }
            }
            Ok(VideoTag::Frame {
                keyframe,
                cts_ms,
                data,
            }) => MediaFrame::Video {
                dts_ms: p.video_ts.unwrap_ms(raw_ts),
                cts_ms,
                keyframe,
                data,
            },
            Ok(VideoTag::Ignored) => return Ok(()),
            Err(e) if e.is_fatal() => {
                warn!(error = %e, "dropping the publisher: its video cannot be decoded");
                return Err(Exit::Protocol(e.to_string()));
            }
            Err(e) => {
                p.dropped_tags += 1;
                if e.is_unsupported_codec() {
                    if !self.warned_video_codec {
                        self.warned_video_codec = true;
                        warn!(error = %e, "dropping video this server cannot ingest yet");
                    }
                    if !p.video_dropped {
                        p.video_dropped = true;
                        let metadata = p.metadata.clone();
                        p.announce(metadata)?;
                    }
                } else {
                    debug!(error = %e, "dropping malformed video tag");
                }
                return Ok(());
            }
        };
        p.push(frame)
    }

    fn on_audio(&mut self, body: &Bytes, raw_ts: u32) -> Result<(), Exit> {
        let Some(p) = self.publishing.as_mut() else {
            return Ok(());
        };
        let frame = match flv::parse_audio(body) {
            Ok(AudioTag::AacSequenceHeader(asc)) => MediaFrame::AudioConfig { asc },
            Ok(AudioTag::AacRaw(data)) => MediaFrame::Audio {
                dts_ms: p.audio_ts.unwrap_ms(raw_ts),
                data,
            },
            Err(e) => {
                p.dropped_tags += 1;
                if e.is_unsupported_codec() {
                    if !self.warned_audio_codec {
                        self.warned_audio_codec = true;
                        warn!(error = %e, "dropping audio this server cannot ingest yet");
                    }
                    if !p.audio_dropped {
                        p.audio_dropped = true;
                        let metadata = p.metadata.clone();
                        p.announce(metadata)?;
                    }
                } else {
                    debug!(error = %e, "dropping malformed audio tag");
                }
                return Ok(());
            }
        };
        p.push(frame)
    }

    /// Answers a request with an error status, sends it, and ends the connection.
    async fn refuse(&mut self, request_id: u32, code: &str, description: &str) -> Result<(), Exit> {
        let results = self.session_call(|s| s.reject_request(request_id, code, description))?;
        self.queue(results);
        self.flush().await?;
        Err(Exit::Refused)
    }

    /// Calls the session (events only come from it, so it exists), errors and panics caught.
    fn session_call<T>(
        &mut self,
        f: impl FnOnce(&mut ServerSession) -> Result<T, ServerSessionError>,
    ) -> Result<T, Exit> {
        match &mut self.phase {
            Phase::Session(session) => guarded(|| f(session)).map_err(Exit::Protocol),
            Phase::Handshake(_) => Err(Exit::Protocol(
                "no rtmp session before the handshake completes".into(),
            )),
        }
    }

    /// Queues the packets of an accept/reject answer (those produce nothing else).
    fn queue(&mut self, results: Vec<ServerSessionResult>) {
        for result in results {
            if let ServerSessionResult::OutboundResponse(packet) = result {
                self.out.extend_from_slice(&packet.bytes);
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Exit> {
        if self.out.is_empty() {
            return Ok(());
        }
        match timeout(self.config.write_timeout, self.socket.write_all(&self.out)).await {
            Err(_elapsed) => return Err(Exit::Timeout(Stall::Write)),
            Ok(Err(e)) => return Err(Exit::Io(e.to_string())),
            Ok(Ok(())) => {}
        }
        self.out.clear();
        if self.out.capacity() > OUT_BUFFER_KEEP_BYTES {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Closes the socket, then tells the sink (if a publish was running) how it ended.
    async fn close(mut self, exit: Exit) {
        // Shutting down only queues a FIN; it does not wait for the peer.
        let _ = self.socket.shutdown().await;
        drop(self.socket);
        let Some(publishing) = self.publishing.take() else {
            match &exit {
                Exit::Timeout(_) | Exit::Protocol(_) => {
                    info!(reason = %exit, "rtmp connection dropped")
                }
                Exit::Refused => {}
                _ => debug!(reason = %exit, "rtmp connection closed"),
            }
            return;
        };
        let end = match &exit {
            // OBS, ffmpeg and rtmp2sink unpublish when they stop streaming; a connection that
            // just closes is an encoder that crashed or lost its network.
            Exit::Unpublished => EndReason::PublisherStopped,
            Exit::Eof if self.unpublishing => EndReason::PublisherStopped,
            Exit::ServerEnded(_) => EndReason::ServerEnded,
            Exit::Eof
            | Exit::Handshake(_)
            | Exit::Protocol(_)
            | Exit::Io(_)
            | Exit::Timeout(_)
            | Exit::Refused => EndReason::PublisherLost(exit.to_string()),
        };
        info!(
            reason = %exit,
            frames = publishing.frames,
            dropped_tags = publishing.dropped_tags,
            "publish ended"
        );
        publishing.sink.finish(end);
    }
}

/// Resolves when the running publish's sink says the server wants it gone; never otherwise.
async fn wait_ended<S>(publishing: &mut Option<Publishing<S>>) {
    match publishing {
        Some(p) => (&mut p.ended).await,
        None => std::future::pending().await,
    }
}

/// Runs a call into rml_rtmp, turning both its errors and its panics into an error string.
///
/// rml_rtmp 0.8 can panic on crafted input (e.g. an `@setDataFrame` data message without
/// arguments indexes an empty vector; some chunk header arithmetic can overflow). Such a panic is
/// caught here and ends only this connection, as a protocol error.
fn guarded<T, E: fmt::Display>(f: impl FnOnce() -> Result<T, E>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_panic) => Err("rtmp library panicked on malformed input".to_string()),
    }
}

/// The NetStream status code sent with a refused publish.
fn reject_code(e: &Error) -> &'static str {
    match e {
        Error::BadStreamKey(_)
        | Error::StreamEnded(_)
        | Error::AlreadyLive(_)
        | Error::LiveOnAnotherNode(_)
        | Error::Ended(_) => "NetStream.Publish.BadName",
        Error::Pipeline(_) | Error::Store(_) => "NetStream.Publish.Failed",
    }
}
