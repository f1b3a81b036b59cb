//! Prints the GStreamer pipeline livefront builds for a stream from a typical OBS publisher
//! (x264 High 1920x1080 at 30 fps + AAC), for a ladder preset.
//!
//! `cargo run --example pipeline_description -- [PRESET|FILE.toml] [av|video|audio] [DATA_DIR]`
//! (defaults: `default av /data`). The golden files in `tests/golden/` are this output.
use std::path::PathBuf;

use livefront::config::ladder::LadderSpec;
use livefront::pipeline::build::describe;
use livefront::pipeline::spec::PipelineSpec;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let ladder = LadderSpec::resolve(&args.next().unwrap_or_else(|| "default".into()))?;
    let tracks = args.next().unwrap_or_else(|| "av".into());
    let data_dir = PathBuf::from(args.next().unwrap_or_else(|| "/data".into()));
    let (video, audio) = match tracks.as_str() {
        "av" => (true, true),
        "video" => (true, false),
        "audio" => (false, true),
        other => anyhow::bail!("unknown track set {other:?}: use av, video or audio"),
    };
    println!(
        "{}",
        describe(&PipelineSpec::example(&ladder, video, audio, &data_dir))
    );
    Ok(())
}
