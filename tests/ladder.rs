//! The transcoded ladder on sources small enough for CI: rungs below the source only, segments
//! aligned across renditions, portrait kept, posters, per-stream presets, bad presets refused.
mod common;

use anyhow::Result;
use common::*;
use livefront::app::App;
use serde_json::json;

fn stream_inf(master: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = master.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].starts_with("#EXT-X-STREAM-INF"))
        .map(|w| {
            (
                w[0].to_string(),
                w[1].split_once("/index.m3u8").unwrap().0.to_string(),
            )
        })
        .collect()
}

fn extinfs(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| l.starts_with("#EXTINF"))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rungs_below_the_source_are_aligned_with_it_and_playable() -> Result<()> {
    let criticals = gstreamer_criticals();
    let mut server = small_ladder_server().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let publish = Publish {
        size: "640x360",
        ..Publish::obs_like(6.0)
    };
    let (status, stderr) = finish(publish.spawn(&server.publish_url(&stream))?, DEADLINE).await?;
    assert!(status.success(), "{stderr}");
    api.recording_ready(&token, &id).await?;

    // The same ladder as low-latency CMAF (master.m3u8) and MPEG-TS (master-ts.m3u8).
    for (master, dir) in [("master.m3u8", "ll/"), ("master-ts.m3u8", "")] {
        let (_, master) = api
            .get_text(&format!("/hls/{id}/{master}"), Some(&token))
            .await?;
        let variants = stream_inf(&master);
        let names: Vec<&str> = variants.iter().map(|v| v.1.as_str()).collect();
        assert_eq!(
            names,
            ["144p", "240p", "source"].map(|n| format!("{dir}{n}")),
            "sorted by bandwidth: {master}"
        );
        assert!(
            variants[0].0.contains("RESOLUTION=256x144") && variants[0].0.contains("FRAME-RATE=15"),
            "{master}"
        );
        assert!(
            variants[0].0.contains("CODECS=\"avc1.42c0"),
            "baseline rung: {master}"
        );
        assert!(
            variants[1].0.contains("RESOLUTION=426x240")
                && variants[1].0.contains("CODECS=\"avc1.4d40"),
            "{master}"
        );
        assert!(
            variants[2].0.contains("RESOLUTION=640x360") && variants[2].0.contains("avc1.6400"),
            "{master}"
        );
        for (inf, _) in &variants {
            assert!(
                inf.contains("AVERAGE-BANDWIDTH=") && inf.contains("mp4a.40.2"),
                "{inf}"
            );
        }

        let mut lists = Vec::new();
        for name in ["source", "240p", "144p"] {
            let (status, vod) = api
                .get_text(&format!("/hls/{id}/{dir}{name}/index.m3u8"), Some(&token))
                .await?;
            assert_eq!(status, 200);
            assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
            lists.push(extinfs(&vod));
        }
        assert!(lists[0].len() >= 3, "{:?}", lists[0]);
        assert_eq!(
            lists[1], lists[0],
            "240p segments cover the same media time as the source"
        );
        // 144p runs at 15 fps: the same cuts, only the last segment's last frame lasts 2 source frames.
        let n = lists[0].len();
        assert_eq!(lists[2].len(), n, "{:?}", lists[2]);
        assert_eq!(
            lists[2][..n - 1],
            lists[0][..n - 1],
            "144p segments cover the same media time as the source"
        );
    }

    for (name, size) in [("240p", (426, 240)), ("144p", (256, 144))] {
        let seg = server
            .data_dir()
            .join(format!("streams/{id}/hls/{name}/seg00001.ts"));
        let out = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,width,height",
                "-of",
                "csv=p=0",
                seg.to_str().unwrap(),
            ],
            DEADLINE,
        )
        .await?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("h264,{},{}", size.0, size.1)),
            "{name}: {text}"
        );
        assert!(text.contains("aac"), "audio copied into {name}: {text}");
    }

    // The poster: a real JPEG, kept after the end, hidden like the video while practice.
    let thumb = format!("/api/v1/streams/{id}/thumbnail.jpg");
    assert_eq!(api.status(&thumb, None).await?, 404);
    let resp = api
        .http
        .get(api.url(&thumb))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let jpeg = resp.bytes().await?;
    assert!(
        jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9]),
        "a complete JPEG"
    );
    let path = server
        .data_dir()
        .join(format!("streams/{id}/thumbnail.jpg"));
    assert_eq!(video_size(&path).await?, (640, 360));
    server.stop().await;
    // The poster branch drops the decoded frames between posters without a GStreamer critical
    // for each (`output::drop_buffer`); nothing else in a transcoded stream logs one either.
    assert_eq!(gstreamer_criticals(), criticals, "GStreamer criticals");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portrait_source_gets_portrait_rungs() -> Result<()> {
    let mut server = small_ladder_server().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let publish = Publish {
        size: "360x640",
        ..Publish::obs_like(4.0)
    };
    let (status, stderr) = finish(publish.spawn(&server.publish_url(&stream))?, DEADLINE).await?;
    assert!(status.success(), "{stderr}");
    server.api.recording_ready(&server.demo_token, &id).await?;
    let (_, master) = server
        .api
        .get_text(&format!("/hls/{id}/master.m3u8"), Some(&server.demo_token))
        .await?;
    assert!(master.contains("RESOLUTION=240x426"), "{master}");
    assert!(master.contains("RESOLUTION=144x256"), "{master}");
    assert!(master.contains("RESOLUTION=360x640"), "{master}");
    // The encoded pictures themselves are upright (no 16:9 frame with bars), and so is the poster.
    let hls = server.data_dir().join(format!("streams/{id}/hls"));
    for (rung, expected) in [
        ("240p", (240, 426)),
        ("144p", (144, 256)),
        ("source", (360, 640)),
    ] {
        let (w, h) = video_size(&hls.join(rung).join("seg00000.ts")).await?;
        assert_eq!((w, h), expected, "{rung}");
        assert!(w < h, "{rung} is portrait: {w}x{h}");
    }
    let poster = server
        .api
        .http
        .get(
            server
                .api
                .url(&format!("/api/v1/streams/{id}/thumbnail.jpg")),
        )
        .bearer_auth(&server.demo_token)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let poster_file = server.data_dir().join("poster-probe.jpg");
    std::fs::write(&poster_file, &poster)?;
    let (w, h) = video_size(&poster_file).await?;
    assert!(w < h, "the poster is portrait: {w}x{h}");
    server.stop().await;
    Ok(())
}

/// An untagged HD source is BT.709; its SD rungs stay BT.709 (tagged so) instead of being
/// converted to SD's default BT.601, which cost ~15 % of the ladder's CPU for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_rungs_keep_the_colorimetry_of_an_hd_source() -> Result<()> {
    let mut server = small_ladder_server().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let (status, stderr) = finish(
        Publish::obs_like(3.0).spawn(&server.publish_url(&stream))?,
        DEADLINE,
    )
    .await?;
    assert!(status.success(), "{stderr}");
    server.api.recording_ready(&server.demo_token, &id).await?;
    let seg = server
        .data_dir()
        .join(format!("streams/{id}/hls/240p/seg00000.ts"));
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=height,color_space,color_primaries",
            "-of",
            "csv=p=0",
            seg.to_str().unwrap(),
        ],
        DEADLINE,
    )
    .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().next(), Some("240,bt709,bt709"), "{text}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creators_pick_a_builtin_ladder_per_stream() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let (status, v) = api
        .request(
            reqwest::Method::POST,
            "/api/v1/streams",
            Some(&server.demo_token),
            Some(json!({"title": "t", "ladder": "lowcpu"})),
        )
        .await?;
    assert_eq!((status, v["ladder"].as_str()), (201, Some("lowcpu")), "{v}");
    let (status, v) = api
        .request(
            reqwest::Method::POST,
            "/api/v1/streams",
            Some(&server.demo_token),
            Some(json!({"title": "t", "ladder": "/etc/passwd"})),
        )
        .await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("lowcpu"),
        "the message lists the choices: {v}"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_invalid_preset_stops_startup_naming_file_and_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let preset = dir.path().join("broken.toml");
    for (broken, key) in [
        (
            SMALL_LADDER.replace("height = 240", "height = 241"),
            "rung[0].height",
        ),
        (
            SMALL_LADDER.replace("max_fps = 15", "max_fps = 15\nbitrate = 3"),
            "bitrate",
        ),
    ] {
        std::fs::write(&preset, broken)?;
        let mut config = test_config(dir.path());
        config.hls.ladder = preset.to_string_lossy().into_owned();
        let err = App::start(config)
            .await
            .err()
            .expect("start-up refused")
            .to_string();
        assert!(err.contains("broken.toml") && err.contains(key), "{err}");
    }
    Ok(())
}
