//! Outputs of a live stream's pipeline: HLS playlists and segments, the recording, clips cut from it.
pub mod clips;
pub mod cmaf;
pub mod cmaf_mux;
pub mod cmaf_parts;
pub mod codecs;
pub mod daterange;
pub mod disk_space;
pub mod event_list;
pub mod file_cache;
pub mod hls;
pub mod listed_names;
pub mod playlist;
pub mod recording;
pub mod replay;
pub mod rtsp;
pub mod track_frames;
pub mod ts_mux;
pub mod ts_segments;
pub mod visibility;

use gstreamer as gst;

/// What a buffer probe returns to drop the buffer it was given: it takes the buffer (freed here)
/// and says it handled it. Not `PadProbeReturn::Drop`: gstreamer-rs hands the probe the buffer and
/// leaves GStreamer's pointer to it empty, and GStreamer 1.22 then unrefs that empty pointer, a
/// `gst_mini_object_unref` critical on stderr for every frame dropped.
pub fn drop_buffer(info: &mut gst::PadProbeInfo) -> gst::PadProbeReturn {
    info.data.take();
    gst::PadProbeReturn::Handled
}
