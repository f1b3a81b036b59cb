//! One live stream's RTSP feed: the stream pipeline's `rtsp-video` / `rtsp-audio` appsinks hand
//! each buffer to the appsrcs of the RTSP media that viewers of `/live/{id}` share.
//!
//! Nothing here can stall the stream pipeline: with no viewers a buffer is dropped at once, and
//! each media appsrc drops its oldest buffers (`leaky-type=downstream`) when a viewer is slow.
use std::sync::{Arc, Mutex, MutexGuard};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Media held in a media appsrc before its oldest buffers are dropped.
const MEDIA_QUEUE_NS: u64 = 2_000_000_000;

/// The tracks of one stream, as the RTSP media's launch line and the feed see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

impl Track {
    pub fn name(self) -> &'static str {
        match self {
            Track::Video => "video",
            Track::Audio => "audio",
        }
    }
}

/// The launch line of the RTSP media for these tracks (payloaders `pay0`, `pay1` as the RTSP
/// server expects); the video is H.265 when `hevc`, else H.264.
pub fn media_launch(tracks: &[Track], hevc: bool) -> String {
    let branches: Vec<String> = tracks
        .iter()
        .enumerate()
        .map(|(i, track)| {
            let (parse, pay) = match track {
                Track::Video if hevc => ("h265parse", "rtph265pay config-interval=-1"),
                Track::Video => ("h264parse", "rtph264pay config-interval=-1"),
                Track::Audio => ("aacparse", "rtpmp4gpay"),
            };
            format!(
                "appsrc name=src-{t} is-live=true format=time leaky-type=downstream max-time={MEDIA_QUEUE_NS} \
                 max-bytes=0 max-buffers=0 ! {parse} name=parse-{t} ! {pay} name=pay{i} pt={pt}",
                t = track.name(),
                pt = 96 + i,
            )
        })
        .collect();
    format!("( {} )", branches.join(" "))
}

/// One RTSP media being fed (shared by all its viewers).
struct Tap {
    media: gst::glib::WeakRef<gstreamer_rtsp_server::RTSPMedia>,
    video: Option<gst_app::AppSrc>,
    audio: Option<gst_app::AppSrc>,
    /// Added to the stream's timestamps to make them running times of the media's pipeline;
    /// fixed by the first buffer so that audio and video stay in sync.
    offset_ns: Option<i64>,
    /// Video is only forwarded from a keyframe on; audio waits for it too.
    started: bool,
}

#[derive(Default)]
struct State {
    taps: Vec<Tap>,
    caps_video: Option<gst::Caps>,
    caps_audio: Option<gst::Caps>,
    ended: bool,
}

/// The feed of one stream; cloned into the appsink callbacks and the media factory.
#[derive(Clone, Default)]
pub struct Feed {
    state: Arc<Mutex<State>>,
}

impl Feed {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts feeding a media the RTSP server just built for a viewer.
    pub fn attach(&self, media: &gstreamer_rtsp_server::RTSPMedia) {
        use gstreamer_rtsp_server::prelude::*;
        let element = media.element();
        let Some(bin) = element.downcast_ref::<gst::Bin>() else {
            return;
        };
        let src = |track: Track| {
            bin.by_name(&format!("src-{}", track.name()))
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        };
        let (video, audio) = (src(Track::Video), src(Track::Audio));
        let mut state = self.state();
        if let (Some(v), Some(caps)) = (&video, &state.caps_video) {
            v.set_caps(Some(caps));
        }
        if let (Some(a), Some(caps)) = (&audio, &state.caps_audio) {
            a.set_caps(Some(caps));
        }
        if state.ended {
            for src in video.iter().chain(audio.iter()) {
                let _ = src.end_of_stream();
            }
            return;
        }
        state.taps.push(Tap {
            media: media.downgrade(),
            started: video.is_none(),
            video,
            audio,
            offset_ns: None,
        });
        drop(state);
        let feed = self.clone();
        media.connect_unprepared(move |media| feed.detach(media));
    }

    fn detach(&self, media: &gstreamer_rtsp_server::RTSPMedia) {
        self.state().taps.retain(|t| {
            t.media
                .upgrade()
                .is_some_and(|m| m.as_ptr() != media.as_ptr())
        });
    }

    /// Connects the stream pipeline's appsink of `track` to this feed.
    pub fn connect(&self, sink: &gst_app::AppSink, track: Track) {
        let feed = self.clone();
        let at_eos = self.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    if let Ok(sample) = sink.pull_sample() {
                        feed.forward(track, &sample);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .eos(move |_| at_eos.end())
                .build(),
        );
    }

    fn forward(&self, track: Track, sample: &gst::Sample) {
        let Some(buffer) = sample.buffer() else {
            return;
        };
        let mut state = self.state();
        let caps = sample.caps().map(|c| c.to_owned());
        let known = match track {
            Track::Video => &mut state.caps_video,
            Track::Audio => &mut state.caps_audio,
        };
        let caps_changed = caps.is_some() && *known != caps;
        if caps_changed {
            known.clone_from(&caps);
        }
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        for tap in &mut state.taps {
            let src = match track {
                Track::Video => tap.video.as_ref(),
                Track::Audio => tap.audio.as_ref(),
            };
            let Some(src) = src else { continue };
            if caps_changed && let Some(caps) = &caps {
                src.set_caps(Some(caps));
            }
            if !tap.started {
                if track == Track::Video && keyframe {
                    tap.started = true;
                } else {
                    continue;
                }
            }
            let Some(stamp) = buffer.dts_or_pts() else {
                continue;
            };
            let offset = *tap.offset_ns.get_or_insert_with(|| {
                let now = src.current_running_time().map_or(0, |t| t.nseconds());
                now as i64 - stamp.nseconds() as i64
            });
            let shift = |t: Option<gst::ClockTime>| {
                t.map(|t| {
                    gst::ClockTime::from_nseconds((t.nseconds() as i64 + offset).max(0) as u64)
                })
            };
            let mut out = buffer.copy();
            {
                let b = out.make_mut();
                b.set_pts(shift(buffer.pts()));
                b.set_dts(shift(buffer.dts()));
            }
            // A media being torn down refuses buffers; its `unprepared` removes the tap.
            let _ = src.push_buffer(out);
        }
    }

    /// The stream ended: its viewers get EOS, and media built from now on start at EOS.
    pub fn end(&self) {
        let mut state = self.state();
        state.ended = true;
        for tap in state.taps.drain(..) {
            for src in tap.video.iter().chain(tap.audio.iter()) {
                let _ = src.end_of_stream();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_launch_names_one_payloader_per_track_in_order() {
        let av = media_launch(&[Track::Video, Track::Audio], false);
        assert!(
            av.contains("rtph264pay config-interval=-1 name=pay0 pt=96"),
            "{av}"
        );
        assert!(av.contains("rtpmp4gpay name=pay1 pt=97"), "{av}");
        let audio = media_launch(&[Track::Audio], false);
        let hevc = media_launch(&[Track::Video], true);
        assert!(
            hevc.contains("h265parse name=parse-video ! rtph265pay config-interval=-1 name=pay0"),
            "{hevc}"
        );
        assert!(audio.contains("rtpmp4gpay name=pay0 pt=96"), "{audio}");
        gst::init().unwrap();
        gst::parse::launch(av.trim_start_matches("( ").trim_end_matches(" )"))
            .unwrap_or_else(|e| panic!("{av}: {e}"));
    }
}
