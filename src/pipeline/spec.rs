//! What a stream's pipeline is built from: tracks, codec configuration, output paths.
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

/// The tracks a publisher sends, with their codec configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tracks {
    /// H.264 avcC.
    pub video: Option<Bytes>,
    /// AAC AudioSpecificConfig.
    pub audio: Option<Bytes>,
}

impl Tracks {
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }
}

/// Where a stream's files live: `data/streams/{id}/…`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamPaths {
    pub dir: PathBuf,
}

pub const SOURCE_RENDITION: &str = "source";

impl StreamPaths {
    pub fn new(data_dir: &Path, id: &str) -> Self {
        StreamPaths {
            dir: data_dir.join("streams").join(id),
        }
    }
    pub fn hls_dir(&self) -> PathBuf {
        self.dir.join("hls")
    }
    pub fn rendition_dir(&self, rendition: &str) -> PathBuf {
        self.hls_dir().join(rendition)
    }
    /// The fragmented MP4 written while live (crash-safe).
    pub fn recording_fragmented(&self) -> PathBuf {
        self.dir.join("recording.fmp4")
    }
    /// The finalised, progressive MP4 users download.
    pub fn recording(&self) -> PathBuf {
        self.dir.join("recording.mp4")
    }
}

/// Everything needed to build one stream's pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    pub tracks: Tracks,
    pub paths: StreamPaths,
    pub segment: Duration,
    /// Number of the first segment file (continues across publishes of the same stream).
    pub first_segment: u32,
}
