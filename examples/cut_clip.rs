//! Cuts one clip from a finished recording and prints what it covers, how long it took and the
//! CPU it used: `cargo run --release --example cut_clip -- REC.mp4 OUT.mp4 START_S END_S`.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

fn cpu_seconds() -> f64 {
    // utime + stime of this process, from /proc (Linux), in clock ticks of 1/100 s.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [recording, out, start, end] = args.as_slice() else {
        anyhow::bail!("usage: cut_clip RECORDING.mp4 OUT.mp4 START_SECONDS END_SECONDS");
    };
    let seconds = |s: &str| -> anyhow::Result<Duration> {
        Ok(Duration::from_secs_f64(
            s.parse().with_context(|| format!("not seconds: {s}"))?,
        ))
    };
    gstreamer::init()?;
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    let cut = livefront::output::clips::cut(
        &PathBuf::from(recording),
        &PathBuf::from(out),
        seconds(start)?,
        seconds(end)?,
    )?;
    println!(
        "clip {out}: {:?}..{:?} of the recording, {} bytes; wall {:.3} s, cpu {:.2} s",
        cut.start,
        cut.end,
        cut.bytes,
        wall.elapsed().as_secs_f64(),
        cpu_seconds() - cpu
    );
    Ok(())
}
