//! One WHIP publisher's WebRTC end: `webrtcbin` answers the offer, then each incoming track is
//! depayloaded into [`MediaFrame`]s like an SRT publisher's: H.264 as it came (AVCC access
//! units, avcC in the caps), VP8/VP9 decoded and encoded to H.264, Opus decoded and encoded to
//! AAC. Frames leave through the same appsinks and channel as the SRT demuxer's.
//!
//! Keyframes come on request: a browser sends one only when asked (PLI), so
//! [`Receiver::request_keyframe`] sends an upstream force-key-unit event that rtpsession turns
//! into a PLI (passthrough) or that x264enc answers (transcode).
use std::net::IpAddr;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_sdp as gst_sdp;
use gstreamer_video as gst_video;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::ingest::VideoCodec;
use crate::ingest::srt::ts_demux::{self, Demuxed, FrameSource, Stamps, Track};

/// How long negotiation (offer, answer, gathering our candidates) may take.
const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(5);
/// What the jitter buffers hold back to reorder and recover lost packets (NACK/RTX).
const JITTER_LATENCY_MS: u32 = 200;
/// Frame rate of H.264 made from VP8/VP9.
const TRANSCODE_FPS: i32 = 30;
/// How long webrtcbin may take to answer `get-stats`.
const STATS_TIMEOUT: Duration = Duration::from_secs(1);
/// Decoded frames waiting for the session task.
const FRAME_CHANNEL: usize = 256;

/// Where ICE looks for a way in.
#[derive(Debug, Clone, Default)]
pub struct Ice {
    /// Local addresses for host candidates (empty: every interface but loopback).
    pub addresses: Vec<IpAddr>,
    /// `stun://host:port`, for a server-reflexive candidate.
    pub stun_server: Option<String>,
    /// The UDP ports ICE may use.
    pub ports: Option<(u16, u16)>,
}

/// A running WebRTC receiver; stopped on [`Receiver::close`] or drop.
pub struct Receiver {
    out: FrameSource,
    video_sink: gst_app::AppSink,
    webrtc: gst::Element,
}

impl Receiver {
    /// Builds the receiver for `offer` (already trimmed to what we take) and returns it with
    /// the answer, every candidate in it (no trickle). Blocks for up to the negotiation
    /// timeout: call it off the async threads.
    pub fn answer(
        name: &str,
        offer: &str,
        ice: &Ice,
        keyframe_every: Duration,
    ) -> Result<(Receiver, String), String> {
        // The encoder of a transcoded track makes a keyframe at each segment boundary itself.
        let gop = (keyframe_every.as_secs_f64() * f64::from(TRANSCODE_FPS))
            .round()
            .max(1.0) as u32;
        let pipeline = gst::Pipeline::with_name(name);
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .name("whip-webrtc")
            .property_from_str("bundle-policy", "max-bundle")
            .property("latency", JITTER_LATENCY_MS)
            .build()
            .map_err(|e| {
                format!("gstreamer element webrtcbin: {e} (package gstreamer1.0-nice?)")
            })?;
        if let Some(stun) = &ice.stun_server {
            webrtc.set_property("stun-server", stun);
        }
        configure_ice(&webrtc.property::<gst_webrtc::WebRTCICE>("ice-agent"), ice)?;
        let video_sink = ts_demux::app_sink(
            "whip-video-sink",
            gst::Caps::builder("video/x-h264")
                .field("stream-format", "avc")
                .field("alignment", "au")
                .build(),
        )?;
        let audio_sink = ts_demux::app_sink(
            "whip-audio-sink",
            gst::Caps::builder("audio/mpeg")
                .field("mpegversion", 4i32)
                .field("stream-format", "raw")
                .build(),
        )?;
        pipeline
            .add_many([&webrtc, video_sink.upcast_ref(), audio_sink.upcast_ref()])
            .map_err(|e| e.to_string())?;
        let (tx, frames) = mpsc::channel(FRAME_CHANNEL);
        video_sink.set_callbacks(ts_demux::callbacks(
            tx.clone(),
            Track::Video(VideoCodec::H264),
            Stamps::RunningTime,
        ));
        audio_sink.set_callbacks(ts_demux::callbacks(tx, Track::Audio, Stamps::RunningTime));

        let sinks = (video_sink.downgrade(), audio_sink.downgrade());
        webrtc.connect_pad_added(move |webrtc, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            let Some(pipeline) = webrtc.parent().and_downcast::<gst::Pipeline>() else {
                return;
            };
            let (video, audio) = (sinks.0.upgrade(), sinks.1.upgrade());
            if let Err(e) = link_track(&pipeline, pad, video.as_ref(), audio.as_ref(), gop) {
                warn!(pad = %pad.name(), error = %e, "dropping a WHIP track");
            }
        });

        let receiver = Receiver {
            out: FrameSource::start(pipeline, frames, "WebRTC receiver")?,
            video_sink,
            webrtc: webrtc.clone(),
        };
        let answer = negotiate(&webrtc, offer)?;
        Ok((receiver, answer))
    }

    /// The next frame, track end or error; never returns while nothing happens.
    pub async fn next(&mut self) -> Demuxed {
        self.out.next().await
    }

    /// Asks for a keyframe (the next segment can start with it).
    pub fn request_keyframe(&self) {
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        if let Some(pad) = self.video_sink.static_pad("sink") {
            pad.push_event(event);
        }
    }

    /// webrtcbin's statistics (`get-stats`), or None when it does not answer in time.
    pub async fn stats(&self) -> Option<gst::Structure> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let promise = gst::Promise::with_change_func(move |reply| {
            let _ = tx.send(reply.ok().flatten().map(|s| s.to_owned()));
        });
        self.webrtc
            .emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
        tokio::time::timeout(STATS_TIMEOUT, rx).await.ok()?.ok()?
    }

    /// Stops the pipeline off the async threads.
    pub async fn close(self) {
        self.out.close().await;
    }
}

fn configure_ice(agent: &gst_webrtc::WebRTCICE, ice: &Ice) -> Result<(), String> {
    for address in &ice.addresses {
        if !agent.emit_by_name::<bool>("add-local-ip-address", &[&address.to_string()]) {
            return Err(format!("ICE cannot use the local address {address}"));
        }
    }
    if let Some((min, max)) = ice.ports {
        agent.set_property("min-rtp-port", u32::from(min));
        agent.set_property("max-rtp-port", u32::from(max));
    }
    Ok(())
}

/// Offer in, answer out, with our candidates once gathering completed.
fn negotiate(webrtc: &gst::Element, offer: &str) -> Result<String, String> {
    let sdp = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
        .map_err(|_| "the offer is not SDP".to_string())?;
    let offer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, sdp);
    let (gathered_tx, gathered) = std_mpsc::channel();
    webrtc.connect_notify(Some("ice-gathering-state"), move |webrtc, _| {
        let state = webrtc.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
        if state == gst_webrtc::WebRTCICEGatheringState::Complete {
            let _ = gathered_tx.send(());
        }
    });
    call(webrtc, "set-remote-description", &offer)?;
    let reply = call_with(webrtc, "create-answer", None)?;
    let answer = reply
        .as_ref()
        .and_then(|s| s.get::<gst_webrtc::WebRTCSessionDescription>("answer").ok())
        .ok_or_else(|| {
            match reply
                .as_ref()
                .and_then(|s| s.get::<gst::glib::Error>("error").ok())
            {
                Some(e) => format!("webrtcbin could not answer: {e}"),
                None => "webrtcbin could not answer the offer".to_string(),
            }
        })?;
    call(webrtc, "set-local-description", &answer)?;
    gathered
        .recv_timeout(NEGOTIATION_TIMEOUT)
        .map_err(|_| "gathering ICE candidates did not complete".to_string())?;
    let local = webrtc
        .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
        .ok_or("webrtcbin has no local description")?;
    local
        .sdp()
        .as_text()
        .map_err(|e| format!("the answer does not print: {e}"))
}

/// Emits `signal(description, promise)` and waits for the promise.
fn call(
    webrtc: &gst::Element,
    signal: &str,
    description: &gst_webrtc::WebRTCSessionDescription,
) -> Result<(), String> {
    let reply = call_with(webrtc, signal, Some(description))?;
    match reply
        .as_ref()
        .and_then(|s| s.get::<gst::glib::Error>("error").ok())
    {
        Some(e) => Err(format!("{signal}: {e}")),
        None => Ok(()),
    }
}

fn call_with(
    webrtc: &gst::Element,
    signal: &str,
    description: Option<&gst_webrtc::WebRTCSessionDescription>,
) -> Result<Option<gst::Structure>, String> {
    let (tx, rx) = std_mpsc::channel();
    let promise = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply.ok().flatten().map(|s| s.to_owned()));
    });
    match description {
        Some(d) => webrtc.emit_by_name::<()>(signal, &[d, &promise]),
        None => webrtc.emit_by_name::<()>(signal, &[&None::<gst::Structure>, &promise]),
    }
    rx.recv_timeout(NEGOTIATION_TIMEOUT)
        .map_err(|_| format!("webrtcbin did not answer {signal}"))
}

/// Links a track webrtcbin found to the chain for its codec, ending in the matching appsink.
fn link_track(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    video: Option<&gst_app::AppSink>,
    audio: Option<&gst_app::AppSink>,
    gop: u32,
) -> Result<(), String> {
    let caps = pad.current_caps().ok_or("no caps")?;
    let s = caps.structure(0).ok_or("empty caps")?;
    let encoding = s
        .get::<&str>("encoding-name")
        .map_err(|_| "no encoding-name")?
        .to_ascii_uppercase();
    let (factories, sink): (&[&str], _) = match encoding.as_str() {
        "H264" => (&["rtph264depay", "h264parse"], video),
        "VP8" => (
            &[
                "rtpvp8depay",
                "vp8dec",
                "videorate",
                "capsfilter",
                "videoconvert",
                "x264enc",
                "h264parse",
            ],
            video,
        ),
        "VP9" => (
            &[
                "rtpvp9depay",
                "vp9dec",
                "videorate",
                "capsfilter",
                "videoconvert",
                "x264enc",
                "h264parse",
            ],
            video,
        ),
        "OPUS" => (
            &[
                "rtpopusdepay",
                "opusdec",
                "audioconvert",
                "audioresample",
                "avenc_aac",
            ],
            audio,
        ),
        other => return Err(format!("codec {other} is not taken")),
    };
    let sink = sink.ok_or("the receiver is closing")?;
    let sink_pad = sink.static_pad("sink").ok_or("appsink without a pad")?;
    if sink_pad.is_linked() {
        return Err("a second track of the same kind".into());
    }
    let mut chain = Vec::with_capacity(factories.len());
    for factory in factories {
        let element = gst::ElementFactory::make(factory)
            .build()
            .map_err(|e| format!("gstreamer element {factory}: {e}"))?;
        match *factory {
            "rtph264depay" | "rtpvp8depay" | "rtpvp9depay" => {
                // Ask for a keyframe when packets are lost instead of passing broken frames.
                element.set_property("request-keyframe", true);
                element.set_property("wait-for-keyframe", true);
            }
            // A browser's frame rate varies with light and load; x264 wants steady timestamps,
            // and HLS segments steady frames.
            "capsfilter" => element.set_property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .field("framerate", gst::Fraction::new(TRANSCODE_FPS, 1))
                    .build(),
            ),
            "x264enc" => {
                element.set_property_from_str("tune", "zerolatency");
                element.set_property_from_str("speed-preset", "veryfast");
                element.set_property("key-int-max", gop);
            }
            _ => {}
        }
        chain.push(element);
    }
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| format!("linking {encoding}: {e}"))?;
    let last = chain.last().expect("chains are not empty");
    last.link(sink)
        .map_err(|e| format!("{encoding} into the appsink: {e}"))?;
    for element in &chain {
        element
            .sync_state_with_parent()
            .map_err(|e| e.to_string())?;
    }
    let first = chain[0].static_pad("sink").ok_or("no sink pad")?;
    pad.link(&first)
        .map_err(|e| format!("linking the {encoding} track: {e:?}"))?;
    debug!(codec = %encoding, "WHIP track linked");
    Ok(())
}
