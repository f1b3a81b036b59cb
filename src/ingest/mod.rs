//! Ingest: protocol servers that terminate publishers and hand timestamped media to a pipeline.
//!
//! Every protocol server has the same shape: a listener, one task per connection, and the narrow
//! [`Publishers`] interface to whoever owns live streams (the registry). The stream key is checked
//! through [`Publishers::authorize`] before any pipeline exists, so a bad key costs nothing.
pub mod av1;
pub mod avc;
pub mod hevc;
pub mod rtmp;
pub mod rtsp;
pub mod srt;
pub mod video;
pub mod whip;

use std::future::Future;

use bytes::Bytes;

pub use crate::store::StreamKey;
pub use video::VideoCodec;

/// Which protocol a publisher used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Rtmp,
    Srt,
    Rtsp,
    Whip,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Rtmp => "rtmp",
            Proto::Srt => "srt",
            Proto::Rtsp => "rtsp",
            Proto::Whip => "whip",
        }
    }
}

/// One unit of media from a publisher, with timestamps in milliseconds on the publisher's clock
/// (already unwrapped from RTMP's 32 bits, so they only grow, apart from publisher bugs).
#[derive(Debug, Clone, PartialEq)]
pub enum MediaFrame {
    /// The video codec and its configuration record: H.264 `AVCDecoderConfigurationRecord`
    /// (avcC), H.265 `HEVCDecoderConfigurationRecord` (hvcC) or `AV1CodecConfigurationRecord`
    /// (av1C); may repeat mid-stream.
    VideoConfig { codec: VideoCodec, record: Bytes },
    /// AAC `AudioSpecificConfig`; may repeat mid-stream.
    AudioConfig { asc: Bytes },
    /// One access unit of the configured codec: length-prefixed NAL units (AVCC/HVCC form), or
    /// for AV1 one temporal unit of OBUs (low-overhead format, as in MP4 samples).
    Video {
        dts_ms: u64,
        /// Composition time offset: PTS = DTS + cts.
        cts_ms: i32,
        keyframe: bool,
        data: Bytes,
    },
    /// One raw AAC frame.
    Audio { dts_ms: u64, data: Bytes },
    /// What the publisher announced in `onMetaData` (all optional; encoders differ).
    Metadata(StreamMetadata),
    /// How the SRT connection is doing (sent about once a second; RTMP never sends it).
    SrtStats(SrtStats),
    /// How the WebRTC connection of a WHIP publish is doing (sent every few seconds; WHIP only).
    WebRtcStats(WebRtcStats),
}

/// The receiving side of a WHIP (WebRTC) publish, for ingest health: webrtcbin's statistics of
/// the incoming RTP streams, video and audio together.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WebRtcStats {
    /// Round-trip time to the publisher where webrtcbin measures one (from RTCP report blocks;
    /// a browser that only sends gives none, so this is often absent).
    pub rtt_ms: Option<f64>,
    /// RTP packets received since the publish started.
    pub packets_received: u64,
    /// RTP packets lost for good since the start (retransmissions that came in time do not
    /// count).
    pub packets_lost: u64,
    /// The share of the packets expected over the last interval that were lost, in percent.
    pub loss_pct: f64,
    /// Interarrival jitter, the larger of the tracks'.
    pub jitter_ms: f64,
    /// Receive rate over the last interval (RTP payload of every track).
    pub bitrate_kbps: f64,
}

/// The receiver side of an SRT connection, for ingest health.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SrtStats {
    /// Round-trip time (measured at the handshake).
    pub rtt_ms: f64,
    /// Data packets that did not arrive the first time since the connection started: recovered
    /// by retransmission or dropped.
    pub loss_pkts: u64,
    /// Retransmitted data packets received.
    pub retransmitted_pkts: u64,
    /// Packets that arrived too late or never, dropped for good (what viewers miss).
    pub dropped_pkts: u64,
    /// Receive rate over the last statistics interval.
    pub recv_rate_kbps: f64,
    /// The latency the connection runs at (the larger of ours and the publisher's).
    pub latency_ms: u64,
}

/// The subset of `onMetaData` we use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamMetadata {
    pub has_video: Option<bool>,
    pub has_audio: Option<bool>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub video_bitrate_kbps: Option<f64>,
    pub audio_bitrate_kbps: Option<f64>,
    pub encoder: Option<String>,
}

/// Why a publish ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The publisher sent deleteStream/closeStream or closed the connection cleanly.
    PublisherStopped,
    /// The connection broke or timed out.
    PublisherLost(String),
    /// We (the server) ended it: API end, shutdown.
    ServerEnded,
}

/// Errors an ingest server reports to its publishers and logs.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("unknown stream key {0}")]
    BadStreamKey(String),
    #[error("stream key {0} belongs to an ended stream")]
    StreamEnded(String),
    #[error("stream key {0} is already being published")]
    AlreadyLive(String),
    /// Another node holds the stream (see `node.lease_ttl`): it is live there.
    #[error("the stream is live on node {0}")]
    LiveOnAnotherNode(String),
    #[error("stream {0} was ended by the server")]
    Ended(String),
    #[error("pipeline could not start: {0}")]
    Pipeline(String),
    #[error("store error: {0}")]
    Store(String),
}

/// What an ingest server needs from the owner of live streams.
pub trait Publishers: Send + Sync + 'static {
    type Sink: MediaSink;
    /// Checks `key` and reserves its stream for this publisher. Must not build a pipeline yet.
    fn authorize(
        &self,
        key: &str,
        proto: Proto,
    ) -> impl Future<Output = Result<Self::Sink, Error>> + Send;
    /// Reserves stream `id` for the server's own pull of its camera (RTSP): no key, but the
    /// stream must still have its pull source and not have ended.
    fn authorize_pull(
        &self,
        id: &crate::store::StreamId,
    ) -> impl Future<Output = Result<Self::Sink, Error>> + Send;
}

/// Where an authorized publisher's media goes. Dropping it without `finish` counts as a lost publisher.
pub trait MediaSink: Send + 'static {
    /// Hands over one frame. An error means the stream is over (ended by the server or its pipeline
    /// failed): the ingest server then disconnects the publisher.
    fn push(&mut self, frame: MediaFrame) -> Result<(), Error>;
    /// The publisher is gone; `reason` says how.
    fn finish(self, reason: EndReason);
    /// Resolves when the server wants this publisher disconnected (API end, shutdown).
    fn ended(&self) -> impl Future<Output = ()> + Send + 'static;
}

/// Logs how a connection task of an ingest server ended (a panic is an error; a cancel is not).
pub(crate) fn log_connection_end(proto: Proto, joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            tracing::error!(error = %e, proto = proto.as_str(), "connection task panicked");
        } else {
            tracing::debug!(error = %e, proto = proto.as_str(), "connection task cancelled");
        }
    }
}
