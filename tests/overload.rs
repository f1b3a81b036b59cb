//! Overload: a rung the machine cannot encode in real time is dropped, and neither the source
//! rendition nor the recording falls behind or stalls because of it.
//!
//! The overload is made certain rather than hoped for: this test binary is pinned to one CPU and
//! its only rung is x264's `placebo` preset at 480p, which no single core encodes at 30 fps. The
//! publisher runs on another CPU so that the media arrives in real time.
//!
//! (The stall this guards against was found by `bench/ladder.sh` at six 720p streams on two cores:
//! a rung lagging by more than its audio queue blocked the audio tee. This test checks the drop
//! path end to end; it does not recreate that much lag.)
mod common;

use anyhow::{Context, Result};
use common::*;

const HEAVY_LADDER: &str = r#"
name = "heavy"
source = true
priority = ["480p"]

[[rung]]
name = "480p"
height = 480
max_fps = 30
video_bitrate_kbps = 1000
[rung.x264]
preset = "placebo"
tune = "zerolatency"
profile = "main"
"#;

const SECONDS: f64 = 12.0;

/// The CPUs this process may use (from `taskset -p`'s view of the kernel's affinity list).
fn allowed_cpus() -> Result<Vec<usize>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .context("no Cpus_allowed_list")?;
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>()?..=b.parse::<usize>()?),
            None => cpus.push(part.parse()?),
        }
    }
    Ok(cpus)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_rung_is_dropped_and_the_source_and_recording_keep_real_time() -> Result<()> {
    let cpus = allowed_cpus()?;
    // Every thread of this process (GStreamer's streaming threads are created later by these).
    let pin = run(
        "taskset",
        &[
            "-a",
            "-cp",
            &cpus[0].to_string(),
            &std::process::id().to_string(),
        ],
        DEADLINE,
    )
    .await?;
    anyhow::ensure!(
        pin.status.success(),
        "taskset: {}",
        String::from_utf8_lossy(&pin.stderr)
    );

    let preset = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()?
        .into_temp_path()
        .keep()?;
    std::fs::write(&preset, HEAVY_LADDER)?;
    let mut server =
        Server::start_with(|c| c.hls.ladder = preset.to_string_lossy().into_owned()).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();

    let publish = Publish::obs_like(SECONDS);
    let mut command = tokio::process::Command::new("taskset");
    command
        .args(["-c", &cpus[cpus.len() - 1].to_string(), "ffmpeg"])
        .args(publish.args(&server.publish_url(&stream)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let publisher = command.spawn()?;

    let warnings = wait_for("the 480p rung dropped", DEADLINE, || async {
        let v = api.stream(&token, &id).await.ok()?;
        let w = v["health"]["warnings"].to_string();
        w.contains("rung 480p dropped").then_some(w)
    })
    .await?;
    assert!(warnings.contains("CPU overloaded"), "{warnings}");
    let (_, master) = api
        .get_text(&format!("/hls/{id}/master.m3u8"), Some(&token))
        .await?;
    assert!(
        !master.contains("480p/") && master.contains("source/"),
        "dropped rung leaves the master playlist: {master}"
    );

    let (status, stderr) = finish(publisher, DEADLINE).await?;
    assert!(status.success(), "{stderr}");
    // The publisher left cleanly, so the stream must end and finalise (it used to hang here: the
    // dropped rung's muxer held audio and blocked the source rendition and the recording).
    let recording = api.recording_ready(&token, &id).await?;
    let ended = api.stream(&token, &id).await?;
    assert_eq!(ended["state"], "ended", "{ended}");

    let (_, source) = api
        .get_text(&format!("/hls/{id}/source/index.m3u8"), Some(&token))
        .await?;
    let listed = playlist_duration(&source);
    assert!(
        (listed - SECONDS).abs() < 2.5,
        "source rendition has all {SECONDS} s: {listed} s listed\n{source}"
    );
    let file = server
        .data_dir()
        .join("streams")
        .join(&id)
        .join("recording.mp4");
    let (codecs, duration) = probe(&file.to_string_lossy()).await?;
    assert_eq!(codecs, ["h264", "aac"], "{recording}");
    let duration = duration.context("recording duration")?;
    assert!(
        (duration - SECONDS).abs() < 1.5,
        "recording has all {SECONDS} s: {duration} s"
    );
    server.stop().await;
    Ok(())
}
