//! Publishes H.265 (HEVC) or AV1 + AAC over Enhanced RTMP, as OBS 31 does: no ffmpeg 5.1 or
//! GStreamer 1.22 tool can.
//!
//!   cargo run --example hevc_publisher -- [--codec hevc|av1] rtmp://HOST:1935/live/STREAM_KEY \
//!       [SECONDS [WIDTHxHEIGHT]]
//!
//! GStreamer encodes a test picture (`x265enc`, or `av1enc` (libaom) in its realtime usage
//! profile; keyframe every 2 s) and a tone (`avenc_aac`) in real time; this program speaks RTMP
//! through rml_rtmp's client session and writes the tags itself: `onMetaData` with `videocodecid`
//! = the FourCC (`hvc1`, `av01`) as a number, the video as Enhanced RTMP tags (`IsExHeader` bit,
//! FourCC, PacketType SequenceStart with the hvcC or av1C, CodedFrames, SequenceEnd), the audio as
//! legacy FLV AAC tags. H.265 CodedFrames carry a composition time (CodedFramesX when it is 0);
//! AV1 CodedFrames carry none: each is one temporal unit of OBUs without its temporal delimiter
//! (as MP4 samples), a keyframe being a unit with a sequence header and a KEY_FRAME. libaom puts
//! no av1C in its caps, so the av1C is built from the first keyframe's sequence header.
//!
//! For abuse tests, `Options::fourcc` sends another FourCC and `Options::broken_sequence_start`
//! a SequenceStart whose record is garbage. tests/hevc.rs and tests/av1.rs use this file as a
//! module.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use livefront::ingest::av1;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;

/// Enhanced RTMP: `IsExHeader` bit, and the PacketTypes used here.
const EX_HEADER: u8 = 0x80;
const SEQUENCE_START: u8 = 0;
const CODED_FRAMES: u8 = 1;
const SEQUENCE_END: u8 = 2;
const CODED_FRAMES_X: u8 = 3;
/// FLV frame types.
const KEYFRAME: u8 = 1;
const INTER_FRAME: u8 = 2;
const FPS: u32 = 25;

/// The video codec to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Hevc,
    Av1,
}

impl Codec {
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            Codec::Hevc => *b"hvc1",
            Codec::Av1 => *b"av01",
        }
    }
}

/// What to publish, and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// `rtmp://host:port/app/key`.
    pub url: String,
    pub seconds: u32,
    pub width: u32,
    pub height: u32,
    pub codec: Codec,
    /// The FourCC of the video tags (the codec's; anything else to test refusals).
    pub fourcc: [u8; 4],
    /// Send garbage instead of the hvcC/av1C in the SequenceStart.
    pub broken_sequence_start: bool,
    /// Send the video tags (false: the metadata announces video, and only audio comes).
    pub video: bool,
}

impl Options {
    pub fn new(url: &str, seconds: u32) -> Options {
        Options::with_codec(Codec::Hevc, url, seconds)
    }

    pub fn with_codec(codec: Codec, url: &str, seconds: u32) -> Options {
        Options {
            url: url.to_string(),
            seconds,
            width: 320,
            height: 240,
            codec,
            fourcc: codec.fourcc(),
            broken_sequence_start: false,
            video: true,
        }
    }
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut codec = Codec::Hevc;
    if let Some(i) = args.iter().position(|a| a == "--codec") {
        codec = match args.get(i + 1).map(String::as_str) {
            Some("hevc") => Codec::Hevc,
            Some("av1") => Codec::Av1,
            other => bail!("--codec hevc|av1, not {other:?}"),
        };
        args.drain(i..i + 2);
    }
    let Some(url) = args.first() else {
        bail!(
            "usage: hevc_publisher [--codec hevc|av1] rtmp://HOST:PORT/APP/KEY [SECONDS [WIDTHxHEIGHT]]"
        );
    };
    let mut options = Options::with_codec(codec, url, 10);
    if let Some(s) = args.get(1) {
        options.seconds = s.parse().context("SECONDS")?;
    }
    if let Some((w, h)) = args.get(2).and_then(|s| s.split_once('x')) {
        options.width = w.parse().context("WIDTH")?;
        options.height = h.parse().context("HEIGHT")?;
    }
    publish(&options)
}

/// One encoded sample from the GStreamer pipeline.
enum Sample {
    /// The codec configuration (hvcC or av1C, or AudioSpecificConfig).
    Config {
        video: bool,
        data: Bytes,
    },
    Video {
        dts_ms: u32,
        cts_ms: i32,
        keyframe: bool,
        data: Bytes,
    },
    Audio {
        ms: u32,
        data: Bytes,
    },
    End,
}

/// Encodes and publishes `options.seconds` of media in real time; returns when all is sent.
pub fn publish(options: &Options) -> Result<()> {
    let (host, app, key) = split_url(&options.url)?;
    let mut rtmp = Rtmp::connect(&host, &app, &key)?;
    rtmp.send(|s| {
        s.publish_metadata(&StreamMetadata {
            video_width: Some(options.width),
            video_height: Some(options.height),
            video_codec_id: Some(u32::from_be_bytes(options.fourcc)),
            video_frame_rate: Some(FPS as f32),
            audio_codec_id: Some(10),
            audio_sample_rate: Some(48_000),
            audio_channels: Some(2),
            encoder: Some(format!("livefront hevc_publisher ({:?})", options.codec)),
            ..StreamMetadata::new()
        })
    })?;
    let (pipeline, samples) = encoder(options)?;
    let fourcc = options.fourcc;
    let ex = |frame_type: u8, packet_type: u8, payload: &[u8]| {
        let mut tag = vec![EX_HEADER | frame_type << 4 | packet_type];
        tag.extend_from_slice(&fourcc);
        tag.extend_from_slice(payload);
        Bytes::from(tag)
    };
    let mut last_video_ms = 0;
    let result = loop {
        let sample = match samples.recv_timeout(Duration::from_secs(10)) {
            Ok(sample) => sample,
            Err(e) => break Err(anyhow::anyhow!("encoder stalled: {e}")),
        };
        let sent = match sample {
            Sample::Config { video: true, .. } | Sample::Video { .. } if !options.video => Ok(()),
            Sample::Config { video: true, data } => {
                let record = if options.broken_sequence_start {
                    Bytes::from_static(&[0x01, 0xde, 0xad, 0xbe, 0xef])
                } else {
                    data
                };
                rtmp.video(ex(KEYFRAME, SEQUENCE_START, &record), 0)
            }
            Sample::Config { video: false, data } => {
                rtmp.audio(Bytes::from([&[0xaf, 0x00][..], &data].concat()), 0)
            }
            Sample::Video {
                dts_ms,
                cts_ms,
                keyframe,
                data,
            } => {
                last_video_ms = dts_ms;
                let frame_type = if keyframe { KEYFRAME } else { INTER_FRAME };
                let tag = if options.codec == Codec::Av1 {
                    // AV1 has no composition time: the OBUs follow the FourCC.
                    ex(frame_type, CODED_FRAMES, &data)
                } else if cts_ms == 0 {
                    ex(frame_type, CODED_FRAMES_X, &data)
                } else {
                    let cts = cts_ms.to_be_bytes();
                    ex(frame_type, CODED_FRAMES, &[&cts[1..], &data[..]].concat())
                };
                rtmp.video(tag, dts_ms)
            }
            Sample::Audio { ms, data } => {
                rtmp.audio(Bytes::from([&[0xaf, 0x01][..], &data].concat()), ms)
            }
            Sample::End => break Ok(()),
        };
        if let Err(e) = sent {
            break Err(e);
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    if options.video {
        rtmp.video(ex(KEYFRAME, SEQUENCE_END, &[]), last_video_ms)?;
    }
    for result in rtmp.session.stop_publishing()? {
        if let ClientSessionResult::OutboundResponse(p) = result {
            rtmp.socket.write_all(&p.bytes)?;
        }
    }
    Ok(())
}

/// `rtmp://host:port/app/key` → (`host:port`, app, key).
fn split_url(url: &str) -> Result<(String, String, String)> {
    let rest = url
        .strip_prefix("rtmp://")
        .context("the URL must start with rtmp://")?;
    let mut parts = rest.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(host), Some(app), Some(key)) if !key.is_empty() => {
            let host = if host.contains(':') {
                host.to_string()
            } else {
                format!("{host}:1935")
            };
            Ok((host, app.to_string(), key.to_string()))
        }
        _ => bail!("expected rtmp://HOST[:PORT]/APP/KEY"),
    }
}

/// The live encoder: test picture and tone in real time, H.265 (hvcC in the caps, length-prefixed
/// NAL units) or AV1 (temporal units of OBUs) and raw AAC into two appsinks that hand each sample
/// to the sender.
fn encoder(options: &Options) -> Result<(gst::Pipeline, mpsc::Receiver<Sample>)> {
    gst::init()?;
    let gop = 2 * FPS;
    let video_encoder = match options.codec {
        Codec::Hevc => format!(
            "x265enc speed-preset=ultrafast tune=zerolatency key-int-max={gop} ! h265parse ! \
             video/x-h265,stream-format=hvc1,alignment=au"
        ),
        // libaom's realtime profile at its fastest setting, one thread, no look-ahead: real time
        // at small sizes on one core. CBR needs quantizer bounds: with av1enc's defaults (0, 0)
        // libaom 3.6 aborts on an assertion (`rc_pick_q_and_bounds_no_stats_cbr`).
        Codec::Av1 => format!(
            "av1enc usage-profile=realtime cpu-used=10 threads=1 lag-in-frames=0 end-usage=cbr \
             min-quantizer=4 max-quantizer=56 target-bitrate={kbps} keyframe-max-dist={gop} ! \
             av1parse ! \
             video/x-av1,stream-format=obu-stream,alignment=tu",
            kbps = (options.width * options.height / 200).max(200),
        ),
    };
    let av1 = options.codec == Codec::Av1;
    let description = format!(
        "videotestsrc is-live=true pattern=ball num-buffers={frames} ! \
         video/x-raw,format=I420,width={w},height={h},framerate={FPS}/1 ! \
         {video_encoder} ! appsink name=video sync=false \
         audiotestsrc is-live=true samplesperbuffer=1024 num-buffers={audio_buffers} ! \
         audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! \
         audio/mpeg,mpegversion=4,stream-format=raw ! appsink name=audio sync=false",
        frames = options.seconds * FPS,
        w = options.width,
        h = options.height,
        audio_buffers = options.seconds * 48_000 / 1024,
    );
    let pipeline = gst::parse::launch(&description)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let (tx, rx) = mpsc::sync_channel(64);
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for video in [true, false] {
        let sink = pipeline
            .by_name(if video { "video" } else { "audio" })
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .context("appsink")?;
        let (tx, eos_tx, ended) = (tx.clone(), tx.clone(), ended.clone());
        let mut config_sent = false;
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let bytes = |b: &gst::BufferRef| {
                        b.map_readable()
                            .map(|m| Bytes::copy_from_slice(&m))
                            .map_err(|_| gst::FlowError::Error)
                    };
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    if !config_sent {
                        let data = if video && av1 {
                            Bytes::from(av1_config(&bytes(buffer)?)?)
                        } else {
                            let codec_data = sample
                                .caps()
                                .and_then(|c| c.structure(0))
                                .and_then(|s| s.get::<gst::Buffer>("codec_data").ok())
                                .ok_or(gst::FlowError::NotNegotiated)?;
                            bytes(&codec_data)?
                        };
                        tx.send(Sample::Config { video, data })
                            .map_err(|_| gst::FlowError::Flushing)?;
                        config_sent = true;
                    }
                    let pts = buffer.pts().unwrap_or_default().mseconds();
                    let dts = buffer.dts().map_or(pts, |d| d.mseconds());
                    let mut data = bytes(buffer)?;
                    if video && av1 {
                        data = without_temporal_delimiters(&data)?;
                    }
                    let sample = if video {
                        Sample::Video {
                            dts_ms: dts as u32,
                            cts_ms: pts as i32 - dts as i32,
                            keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                            data,
                        }
                    } else {
                        Sample::Audio {
                            ms: pts as u32,
                            data,
                        }
                    };
                    tx.send(sample).map_err(|_| gst::FlowError::Flushing)?;
                    Ok(gst::FlowSuccess::Ok)
                })
                .eos(move |_| {
                    if ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                        let _ = eos_tx.send(Sample::End);
                    }
                })
                .build(),
        );
    }
    pipeline.set_state(gst::State::Playing)?;
    Ok((pipeline, rx))
}

/// The av1C for the stream whose first temporal unit (a keyframe) is `tu`.
fn av1_config(tu: &[u8]) -> Result<Vec<u8>, gst::FlowError> {
    obus(tu)?
        .into_iter()
        .find(|o| o.kind == av1::OBU_SEQUENCE_HEADER)
        .and_then(|o| av1::config_record(o.bytes))
        .ok_or(gst::FlowError::NotNegotiated)
}

/// `tu` without its temporal delimiter OBU: Enhanced RTMP carries AV1 as MP4 samples do.
fn without_temporal_delimiters(tu: &[u8]) -> Result<Bytes, gst::FlowError> {
    let kept: Vec<u8> = obus(tu)?
        .into_iter()
        .filter(|o| o.kind != av1::OBU_TEMPORAL_DELIMITER)
        .flat_map(|o| o.bytes.iter().copied())
        .collect();
    Ok(Bytes::from(kept))
}

fn obus(tu: &[u8]) -> Result<Vec<av1::Obu<'_>>, gst::FlowError> {
    av1::obus(tu)
        .collect::<Result<_, _>>()
        .map_err(|_| gst::FlowError::Error)
}

/// A publishing RTMP client connection (blocking).
struct Rtmp {
    socket: TcpStream,
    session: ClientSession,
}

impl Rtmp {
    /// Handshake, `connect(app)`, `publish(key)`: returns once the server accepted the publish.
    fn connect(host: &str, app: &str, key: &str) -> Result<Rtmp> {
        let mut socket =
            TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
        socket.set_read_timeout(Some(Duration::from_secs(10)))?;
        socket.set_nodelay(true)?;
        let mut handshake = Handshake::new(PeerType::Client);
        socket.write_all(&handshake.generate_outbound_p0_and_p1()?)?;
        let mut buf = vec![0u8; 8192];
        let leftover = loop {
            let n = socket.read(&mut buf)?;
            if n == 0 {
                bail!("the server closed the connection during the handshake");
            }
            match handshake.process_bytes(&buf[..n])? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    socket.write_all(&response_bytes)?
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    socket.write_all(&response_bytes)?;
                    break remaining_bytes;
                }
            }
        };
        let (session, _) = ClientSession::new(ClientSessionConfig::new())?;
        let mut rtmp = Rtmp { socket, session };
        rtmp.handle(&leftover)?;
        rtmp.send(|s| s.request_connection(app.to_string()))?;
        rtmp.wait_for(|e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted))?;
        rtmp.send(|s| s.request_publishing(key.to_string(), PublishRequestType::Live))?;
        rtmp.wait_for(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))?;
        // From here on nothing needs an answer: drain what the server sends (acks, pings) so
        // its writes never block.
        let mut reader = rtmp.socket.try_clone()?;
        reader.set_read_timeout(None)?;
        std::thread::spawn(move || while matches!(reader.read(&mut buf), Ok(n) if n > 0) {});
        Ok(rtmp)
    }

    /// Feeds bytes from the server to the session; answers what it asks for; returns its events.
    fn handle(&mut self, bytes: &[u8]) -> Result<Vec<ClientSessionEvent>> {
        let mut events = Vec::new();
        for result in self.session.handle_input(bytes)? {
            match result {
                ClientSessionResult::OutboundResponse(p) => self.socket.write_all(&p.bytes)?,
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    fn wait_for(&mut self, done: impl Fn(&ClientSessionEvent) -> bool) -> Result<()> {
        let mut buf = vec![0u8; 8192];
        loop {
            let n = self.socket.read(&mut buf)?;
            if n == 0 {
                bail!("the server closed the connection (refused?)");
            }
            for event in self.handle(&buf[..n])? {
                if let ClientSessionEvent::ConnectionRequestRejected { description } = &event {
                    bail!("connect refused: {description}");
                }
                if done(&event) {
                    return Ok(());
                }
            }
        }
    }

    fn send(
        &mut self,
        make: impl FnOnce(
            &mut ClientSession,
        )
            -> Result<ClientSessionResult, rml_rtmp::sessions::ClientSessionError>,
    ) -> Result<()> {
        if let ClientSessionResult::OutboundResponse(p) = make(&mut self.session)? {
            self.socket.write_all(&p.bytes)?;
        }
        Ok(())
    }

    fn video(&mut self, tag: Bytes, ms: u32) -> Result<()> {
        self.send(|s| s.publish_video_data(tag, RtmpTimestamp::new(ms), false))
    }

    fn audio(&mut self, tag: Bytes, ms: u32) -> Result<()> {
        self.send(|s| s.publish_audio_data(tag, RtmpTimestamp::new(ms), false))
    }
}
