//! Outputs of a live stream's pipeline: HLS playlists and segments, the recording, clips cut from it.
pub mod clips;
pub mod cmaf;
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
pub mod ts_mux;
pub mod ts_segments;
pub mod visibility;
