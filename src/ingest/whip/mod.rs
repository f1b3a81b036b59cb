//! WHIP ingest (RFC 9725): a publisher `POST`s an SDP offer with its stream key as a bearer
//! token and gets an answer and a session resource; `DELETE` on that resource ends the publish.
//!
//! The key is checked through [`Publishers::authorize`] before any WebRTC work, like RTMP and
//! SRT, so a wrong key costs nothing. Each session is one [`Receiver`] (webrtcbin) and one task
//! that hands its frames to the stream's [`MediaSink`] until the publisher deletes the session,
//! stops sending media (ICE or DTLS failed, the tab closed), or the server ends the stream.
mod receiver;
pub mod sdp;
mod stats;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, warn};

pub use receiver::Ice;
use receiver::Receiver;
pub use sdp::{MAX_OFFER_BYTES, OfferError};

use crate::ingest::srt::ts_demux::Demuxed;
use crate::ingest::{EndReason, Error, MediaFrame, MediaSink, Proto, Publishers, StreamMetadata};
use crate::store::StreamKey;
use crate::store::stream_key::redact;

/// How long the key check may take.
const AUTHORIZE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the WebRTC statistics go to the stream's health.
const STATS_EVERY: Duration = Duration::from_secs(2);
/// No media for this long ends the publish (the browser went away without a DELETE).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const SESSION_ID_LEN: usize = 24;

/// Why an offer got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Refused(#[from] Error),
    #[error("{0}")]
    Offer(#[from] OfferError),
    #[error("the WebRTC receiver could not start: {0}")]
    Receiver(String),
    #[error("too many WHIP sessions on this server ({0})")]
    Full(usize),
    #[error("the server is stopping")]
    Stopping,
}

/// An answered offer.
pub struct Answer {
    /// Names the session resource (`DELETE` ends it).
    pub session: String,
    pub sdp: String,
}

struct Session {
    /// The stream key, to check a `DELETE`.
    key: StreamKey,
    stop: CancellationToken,
}

/// The WHIP sessions of this server.
pub struct Whip<P: Publishers> {
    publishers: Arc<P>,
    ice: Ice,
    public_ip: Option<IpAddr>,
    /// Keyframes are asked for this often (the HLS segment duration).
    keyframe_every: Duration,
    max_sessions: usize,
    sessions: Mutex<HashMap<String, Session>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl<P: Publishers> Whip<P> {
    pub fn new(
        publishers: Arc<P>,
        ice: Ice,
        public_ip: Option<IpAddr>,
        keyframe_every: Duration,
        max_sessions: usize,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Whip {
            publishers,
            ice,
            public_ip,
            keyframe_every,
            max_sessions,
            sessions: Mutex::new(HashMap::new()),
            shutdown,
            tasks: TaskTracker::new(),
        })
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers `offer` from the publisher holding `key`; media then flows into its stream.
    pub async fn publish(self: &Arc<Self>, key: &str, offer: &str) -> Result<Answer, PublishError> {
        if self.shutdown.is_cancelled() {
            return Err(PublishError::Stopping);
        }
        let count = self.sessions().len();
        if count >= self.max_sessions {
            warn!(
                max = self.max_sessions,
                "WHIP session limit reached, refusing"
            );
            return Err(PublishError::Full(self.max_sessions));
        }
        let offer = sdp::trim_offer(offer)?;
        // The starter then waits for a track the offer announced (its first keyframe comes only
        // when asked for) instead of starting without it.
        let announced = MediaFrame::Metadata(StreamMetadata {
            has_video: Some(sdp::has_section(&offer, "video")),
            has_audio: Some(sdp::has_section(&offer, "audio")),
            ..Default::default()
        });
        let mut sink = timeout(
            AUTHORIZE_TIMEOUT,
            self.publishers.authorize(key, Proto::Whip),
        )
        .await
        .map_err(|_| Error::Store("stream key check timed out".into()))??;
        let session: String = {
            let mut rng = rand::rng();
            (0..SESSION_ID_LEN)
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])
                })
                .collect()
        };
        let (ice, name, every) = (
            self.ice.clone(),
            format!("whip-{session}"),
            self.keyframe_every,
        );
        let answered =
            tokio::task::spawn_blocking(move || Receiver::answer(&name, &offer, &ice, every)).await;
        let (receiver, mut answer) = match answered {
            Ok(Ok(answered)) => answered,
            Ok(Err(e)) => {
                sink.finish(EndReason::PublisherLost(format!("WebRTC: {e}")));
                return Err(PublishError::Receiver(e));
            }
            Err(e) => {
                sink.finish(EndReason::PublisherLost(format!("WebRTC: {e}")));
                return Err(PublishError::Receiver(e.to_string()));
            }
        };
        if let Some(ip) = self.public_ip {
            answer = sdp::add_public_candidates(&answer, ip);
        }
        let stop = self.shutdown.child_token();
        self.sessions().insert(
            session.clone(),
            Session {
                key: StreamKey::from_string(key.to_owned()),
                stop: stop.clone(),
            },
        );
        let (whip, id) = (self.clone(), session.clone());
        let span = tracing::info_span!("whip", session = %id, key = %redact(key));
        self.tasks.spawn(
            async move {
                info!("publishing over WHIP");
                let reason = whip.run(receiver, &mut sink, announced, stop).await;
                info!(reason = ?reason, "WHIP publish over");
                sink.finish(reason);
                whip.sessions().remove(&id);
            }
            .instrument(span),
        );
        Ok(Answer {
            session,
            sdp: answer,
        })
    }

    /// Ends `session` for the holder of `key` (a `DELETE`); false if there is no such session.
    pub fn end(&self, session: &str, key: &str) -> bool {
        let sessions = self.sessions();
        match sessions.get(session) {
            Some(s) if s.key.matches(key) => {
                s.stop.cancel();
                true
            }
            _ => false,
        }
    }

    /// Waits for every session task to finish (after the shutdown token was cancelled).
    pub async fn wait(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Frames to the sink until the publish ends; returns why it ended.
    async fn run(
        &self,
        mut receiver: Receiver,
        sink: &mut P::Sink,
        announced: MediaFrame,
        stop: CancellationToken,
    ) -> EndReason {
        if let Err(e) = sink.push(announced) {
            receiver.close().await;
            return EndReason::PublisherLost(format!("the stream refused media: {e}"));
        }
        let ended = sink.ended();
        tokio::pin!(ended);
        let mut keyframes = tokio::time::interval(self.keyframe_every);
        let mut last_media = Instant::now();
        let mut stats_timer = tokio::time::interval(STATS_EVERY);
        let mut last_stats: Option<(Instant, stats::Totals)> = None;
        let reason = loop {
            tokio::select! {
                () = stop.cancelled() => break if self.shutdown.is_cancelled() {
                    EndReason::ServerEnded
                } else {
                    EndReason::PublisherStopped
                },
                () = &mut ended => break EndReason::ServerEnded,
                () = tokio::time::sleep_until(last_media + IDLE_TIMEOUT) => {
                    break EndReason::PublisherLost(format!(
                        "no media over WHIP for {} s", IDLE_TIMEOUT.as_secs()
                    ));
                }
                _ = keyframes.tick() => receiver.request_keyframe(),
                _ = stats_timer.tick() => {
                    let Some(reply) = receiver.stats().await else { continue };
                    let (now, totals) = (Instant::now(), stats::totals(&reply));
                    let prev = last_stats.as_ref().map(|(at, t)| (t, now.duration_since(*at)));
                    let figures = stats::webrtc_stats(&totals, prev);
                    last_stats = Some((now, totals));
                    if let Err(e) = sink.push(MediaFrame::WebRtcStats(figures)) {
                        break EndReason::PublisherLost(format!("the stream refused media: {e}"));
                    }
                }
                out = receiver.next() => match out {
                    Demuxed::Frame(frame) => {
                        last_media = Instant::now();
                        if let Err(e) = sink.push(frame) {
                            break EndReason::PublisherLost(format!("the stream refused media: {e}"));
                        }
                    }
                    Demuxed::TrackEnded => {}
                    Demuxed::Error(e) => break EndReason::PublisherLost(format!("WebRTC: {e}")),
                },
            }
        };
        receiver.close().await;
        reason
    }
}
