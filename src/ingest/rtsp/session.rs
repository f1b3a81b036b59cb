//! One connection to a camera with retina: DESCRIBE, SETUP of the first H.264 and the first AAC
//! stream, PLAY, then frames turned into [`MediaFrame`]s until the camera goes away.
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use retina::client::{self, Credentials, PlayOptions, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};

use crate::ingest::{MediaFrame, StreamMetadata, VideoCodec};
use crate::store::{PullSource, Transport};

/// DESCRIBE, SETUP and PLAY together must complete within this.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A camera that sends no media for this long is lost (RTCP alone does not count: a camera whose
/// encoder stopped may keep its session alive).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A playing camera session.
pub struct Camera {
    demuxed: client::Demuxed,
    video: Option<usize>,
    audio: Option<usize>,
    /// Video is only handed on from its first keyframe.
    video_started: bool,
    /// When the camera counts as lost unless media arrives.
    idle_deadline: tokio::time::Instant,
}

/// Connects and starts playing. Errors are safe to log (the URL they may name has no userinfo).
pub async fn connect(source: &PullSource) -> Result<(Camera, Vec<MediaFrame>), String> {
    tokio::time::timeout(DEFAULT_CONNECT_TIMEOUT, connect_inner(source))
        .await
        .map_err(|_| format!("no answer within {DEFAULT_CONNECT_TIMEOUT:?}"))?
}

async fn connect_inner(source: &PullSource) -> Result<(Camera, Vec<MediaFrame>), String> {
    let creds = source
        .credentials()
        .map(|(username, password)| Credentials { username, password });
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("livefront/{}", env!("CARGO_PKG_VERSION")));
    let mut session = client::Session::describe(source.without_userinfo(), options)
        .await
        .map_err(|e| format!("describe: {e}"))?;
    let pick = |media: &str, encoding: &str| {
        session
            .streams()
            .iter()
            .position(|s| s.media() == media && s.encoding_name().eq_ignore_ascii_case(encoding))
    };
    let video = pick("video", "h264");
    let audio = pick("audio", "mpeg4-generic");
    if video.is_none() && audio.is_none() {
        let offered: Vec<String> = session
            .streams()
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect();
        return Err(format!(
            "the camera offers no H.264 video or AAC audio (it offers {offered:?})"
        ));
    }
    let transport = match source.transport {
        Transport::Tcp => client::Transport::Tcp(Default::default()),
        Transport::Udp => client::Transport::Udp(Default::default()),
    };
    for i in video.iter().chain(audio.iter()) {
        let options = SetupOptions::default()
            .transport(transport.clone())
            .frame_format(FrameFormat::MP4);
        session
            .setup(*i, options)
            .await
            .map_err(|e| format!("setup: {e}"))?;
    }
    let mut first = vec![MediaFrame::Metadata(StreamMetadata {
        has_video: Some(video.is_some()),
        has_audio: Some(audio.is_some()),
        frame_rate: video
            .and_then(|i| session.streams()[i].framerate())
            .map(f64::from),
        encoder: session.tool().map(|t| format!("{t:?}")),
        ..StreamMetadata::default()
    })];
    // Parameters from the SDP, when the camera puts them there; otherwise they come with the
    // first frame.
    for i in video.iter().chain(audio.iter()) {
        first.extend(config_frame(session.streams()[*i].parameters()));
    }
    let playing = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| format!("play: {e}"))?;
    let demuxed = playing.demuxed().map_err(|e| format!("demux: {e}"))?;
    Ok((
        Camera {
            demuxed,
            video,
            audio,
            video_started: false,
            idle_deadline: tokio::time::Instant::now() + DEFAULT_IDLE_TIMEOUT,
        },
        first,
    ))
}

fn config_frame(parameters: Option<ParametersRef<'_>>) -> Option<MediaFrame> {
    match parameters? {
        ParametersRef::Video(v) => Some(MediaFrame::VideoConfig {
            codec: VideoCodec::H264,
            record: Bytes::copy_from_slice(v.extra_data()),
        }),
        ParametersRef::Audio(a) if !a.extra_data().is_empty() => Some(MediaFrame::AudioConfig {
            asc: Bytes::copy_from_slice(a.extra_data()),
        }),
        _ => None,
    }
}

fn ms(t: retina::Timestamp) -> u64 {
    let clock = i128::from(t.clock_rate().get());
    (i128::from(t.elapsed()) * 1000 / clock).max(0) as u64
}

impl Camera {
    /// The next frames (a new configuration comes before the frame that needs it), or why the
    /// camera is gone.
    pub async fn next(&mut self) -> Result<Vec<MediaFrame>, String> {
        loop {
            let item = tokio::time::timeout_at(self.idle_deadline, self.demuxed.next())
                .await
                .map_err(|_| format!("no media for {DEFAULT_IDLE_TIMEOUT:?}"))?;
            let item = match item {
                None => return Err("the camera closed the session".into()),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(item)) => item,
            };
            let mut out = Vec::new();
            match item {
                CodecItem::VideoFrame(frame) if Some(frame.stream_id()) == self.video => {
                    let keyframe = frame.is_random_access_point();
                    if frame.has_new_parameters() || (keyframe && !self.video_started) {
                        let params = self.demuxed.streams()[frame.stream_id()].parameters();
                        out.extend(config_frame(params));
                    }
                    if !keyframe && !self.video_started {
                        continue;
                    }
                    self.video_started = true;
                    // RTP carries presentation times only; cameras send no B-frames, so
                    // decode order is presentation order.
                    out.push(MediaFrame::Video {
                        dts_ms: ms(frame.timestamp()),
                        cts_ms: 0,
                        keyframe,
                        data: Bytes::from(frame.into_data()),
                    });
                }
                CodecItem::AudioFrame(frame) if Some(frame.stream_id()) == self.audio => {
                    out.push(MediaFrame::Audio {
                        dts_ms: ms(frame.timestamp()),
                        data: Bytes::copy_from_slice(frame.data()),
                    });
                }
                _ => continue,
            }
            self.idle_deadline = tokio::time::Instant::now() + DEFAULT_IDLE_TIMEOUT;
            return Ok(out);
        }
    }
}
