//! Prints the gst-launch description livefront builds for a stream.
//!
//! `cargo run --example pipeline_description -- [av|video|audio] [DATA_DIR]`
//! The output runs with `gst-launch-1.0` once the appsrcs are replaced by real sources.
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use livefront::pipeline::build::describe;
use livefront::pipeline::spec::{PipelineSpec, StreamPaths, Tracks};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let tracks = args.next().unwrap_or_else(|| "av".into());
    let data_dir = PathBuf::from(args.next().unwrap_or_else(|| "/data".into()));
    let (video, audio) = match tracks.as_str() {
        "av" => (true, true),
        "video" => (true, false),
        "audio" => (false, true),
        other => anyhow::bail!("unknown track set {other:?}: use av, video or audio"),
    };
    let spec = PipelineSpec {
        tracks: Tracks {
            video: video.then(|| Bytes::from_static(&[1, 0x64, 0, 0x1f])),
            audio: audio.then(|| Bytes::from_static(&[0x11, 0x90])),
        },
        paths: StreamPaths::new(&data_dir, "abc"),
        segment: Duration::from_secs(2),
        first_segment: 0,
    };
    println!("{}", describe(&spec));
    Ok(())
}
