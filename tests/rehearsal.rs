//! Practice mode keeps the rehearsal private after going public: the public is shown only the
//! media that was public (live window, parts, VOD, segments by name, replay, chapters, clips,
//! posters); the owner keeps everything (full playlists and the full recording).
mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use common::ws::{LiveClient, Token};
use common::*;
use serde_json::Value;

/// Media sequence numbers named in a playlist (`segNNNNN.ts`/`.m4s`, parts `partNNNNN.P.m4s`).
fn numbers(text: &str, prefix: &str) -> Vec<u64> {
    text.split(['\n', '"', '?'])
        .filter_map(|t| t.strip_prefix(prefix))
        .filter_map(|t| t.split(['.', '?']).next()?.parse().ok())
        .collect()
}

/// The owner's TS source playlist: how many segments the stream has closed so far.
async fn owner_segments(api: &Api, token: &str, id: &str) -> Result<u64> {
    let (status, text) = api
        .get_text(&format!("/hls/{id}/source/event.m3u8"), Some(token))
        .await?;
    anyhow::ensure!(status == 200, "{status} {text}");
    Ok(numbers(&text, "seg").last().map_or(0, |n| n + 1))
}

/// Waits a moment into the segment that just opened, before a mode switch, so that the segment
/// open at the switch holds media of both modes, as the tests below expect. A switch on its first
/// frame (likely right after its predecessor was listed) would make it wholly of the new mode
/// (rightly listed, and a product focused before the switch then shows in public until the next
/// focus).
async fn into_a_segment() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Waits until the owner's source playlists (TS and LL) have `n` more segments than `from`.
async fn more_segments(api: &Api, token: &str, id: &str, from: u64, n: u64) -> Result<u64> {
    wait_for(&format!("{n} more segments"), DEADLINE, || async {
        let now = owner_segments(api, token, id).await.ok()?;
        (now >= from + n).then_some(now)
    })
    .await
}

/// Waits until the anonymous public playlist at `path` lists at least `n` segments.
async fn public_playlist(api: &Api, path: &str, n: usize) -> Result<String> {
    api.playlist_with_segments(path, n).await
}

async fn end(api: &Api, token: &str, id: &str, publisher: tokio::process::Child) -> Result<()> {
    api.end_stream(token, id).await?;
    finish(publisher, DEADLINE).await?;
    Ok(())
}

/// Waits until the public replay is built (anonymously visible for a public stream).
async fn replay_ready(api: &Api, id: &str) -> Result<Value> {
    let v = wait_for("public replay", DEADLINE, || async {
        let (status, v) = api
            .get(&format!("/api/v1/streams/{id}/replay"), None)
            .await
            .ok()?;
        (status == 200 && v["state"] != "finalizing").then_some(v)
    })
    .await?;
    anyhow::ensure!(v["state"] == "ready", "public replay: {v}");
    Ok(v)
}

/// MD5 of the first decoded picture of a file or URL.
async fn first_picture(target: &str) -> Result<String> {
    let out = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            target,
            "-map",
            "0:v:0",
            "-frames:v",
            "1",
            "-f",
            "md5",
            "-",
        ],
        DEADLINE,
    )
    .await?;
    anyhow::ensure!(
        out.status.success(),
        "ffmpeg {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Waits until `client` hears its own chat message `text` (it is stored then).
async fn said(client: &mut LiveClient, text: &str) -> Result<()> {
    loop {
        let event = client.next().await?;
        if event["type"] == "chat_message" && event["text"] == text {
            return Ok(());
        }
    }
}

async fn download(api: &Api, url: &str, to: &std::path::Path) -> Result<()> {
    let resp = api.http.get(url).send().await?;
    anyhow::ensure!(resp.status() == 200, "{url}: {}", resp.status());
    std::fs::write(to, resp.bytes().await?)?;
    Ok(())
}

/// Rehearse ~10 s, go public for ~10 s, end: an anonymous viewer never sees a rehearsed
/// segment or part (live, LL-HLS, by name, VOD), the public replay is the public part only and
/// starts on its first picture, the owner keeps everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rehearsal_stays_private_after_going_public() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().context("id")?.to_string();
    assert_eq!(stream["mode"], "practice");
    let rehearsed = api.create_product(&creator, "rehearsed").await?;
    let shown = api.create_product(&creator, "shown").await?;
    api.set_carousel(&creator, &id, &[&rehearsed, &shown])
        .await?;
    let publisher = Publish::small(90.0).spawn(&server.publish_url(&stream))?;

    // Rehearsal: 5 segments (~10 s), a product focused in it, a line said in the chat.
    source_segments(&api, &creator, &id, 1).await?;
    let (status, v) = api.focus(&creator, &id, Some(&rehearsed)).await?;
    assert_eq!(status, 200, "{v}");
    let mut host = LiveClient::connect(&api, &id, Token::Header(&creator)).await?;
    host.say("rehearsal line").await?;
    said(&mut host, "rehearsal line").await?;
    more_segments(&api, &creator, &id, 0, 5).await?;
    // Into the segment that just opened (see `into_a_segment`).
    into_a_segment().await;
    api.set_mode(&creator, &id, "public").await?;
    let at_switch = owner_segments(&api, &creator, &id).await?;
    let last_rehearsed = at_switch - 1;

    // Right after the switch: nothing rehearsed is listed or served to a stranger, by name
    // either; the owner still gets it.
    let ts = |n: u64| format!("/hls/{id}/source/seg{n:05}.ts");
    let part = |n: u64| format!("/hls/{id}/ll/source/part{n:05}.0.m4s");
    let ll_seg = |n: u64| format!("/hls/{id}/ll/source/seg{n:05}.m4s");
    for path in [ts(0), ts(last_rehearsed), ll_seg(0), part(last_rehearsed)] {
        assert_eq!(api.status(&path, None).await?, 404, "{path}");
        assert_eq!(api.status(&path, Some(&creator)).await?, 200, "{path}");
    }
    for path in [
        format!("/hls/{id}/master.m3u8"),
        format!("/hls/{id}/source/index.m3u8"),
        format!("/hls/{id}/ll/source/index.m3u8"),
        format!("/hls/{id}/source/event.m3u8"),
    ] {
        let (status, text) = api.get_text(&path, None).await?;
        assert!(
            status == 404 || numbers(&text, "seg").iter().all(|&n| n >= at_switch),
            "{path}: {text}"
        );
    }

    // Public for 5 segments (~10 s), a product shown, a line said.
    let (status, v) = api.focus(&creator, &id, Some(&shown)).await?;
    assert_eq!(status, 200, "{v}");
    host.say("live line").await?;
    said(&mut host, "live line").await?;
    // A viewer joining now is replayed the public chat only; the page of messages too.
    let mut viewer = LiveClient::connect(&api, &id, Token::None).await?;
    loop {
        let event = viewer.next().await?;
        let text = event["text"].as_str().unwrap_or_default();
        assert_ne!(text, "rehearsal line", "the rehearsal's chat was replayed");
        if text == "live line" {
            break;
        }
    }
    let chat = |token| {
        let path = format!("/api/v1/streams/{id}/chat");
        let api = api.clone();
        async move { api.get_text(&path, token).await }
    };
    let (_, public_chat) = chat(None).await?;
    assert!(
        public_chat.contains("live line") && !public_chat.contains("rehearsal line"),
        "{public_chat}"
    );
    let (_, owner_chat) = chat(Some(creator.as_str())).await?;
    assert!(owner_chat.contains("rehearsal line"), "{owner_chat}");
    let live_ts = public_playlist(&api, &format!("/hls/{id}/source/index.m3u8"), 5).await?;
    let live_ll = public_playlist(&api, &format!("/hls/{id}/ll/source/index.m3u8"), 4).await?;
    for (what, text) in [("ts", &live_ts), ("ll", &live_ll)] {
        let segments = numbers(text, "seg");
        assert!(
            segments.iter().all(|&n| n >= at_switch),
            "{what}: rehearsed segment listed: {text}"
        );
        assert!(
            numbers(text, "part").iter().all(|&n| n >= at_switch),
            "{what}: rehearsed part listed: {text}"
        );
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        assert!(parsed.media_sequence >= at_switch, "{what}: {text}");
    }
    // The anonymous master plays (ffprobe) and the poster is there for everyone.
    let (codecs, _) = probe(&api.url(&format!("/hls/{id}/master.m3u8"))).await?;
    assert!(codecs.iter().any(|c| c == "h264"), "{codecs:?}");
    wait_for("public poster", DEADLINE, || async {
        let path = format!("/api/v1/streams/{id}/thumbnail.jpg");
        (api.status(&path, None).await.ok()? == 200).then_some(())
    })
    .await?;
    let first_public = numbers(&live_ts, "seg")[0];

    end(&api, &creator, &id, publisher).await?;
    let recording = api.recording_ready(&creator, &id).await?;
    let replay = replay_ready(&api, &id).await?;

    // VOD: the public gets the public part, the owner everything.
    let (status, public_vod) = api
        .get_text(&format!("/hls/{id}/source/index.m3u8"), None)
        .await?;
    assert_eq!(status, 200, "{public_vod}");
    assert!(public_vod.contains("#EXT-X-ENDLIST"), "{public_vod}");
    assert!(
        numbers(&public_vod, "seg").iter().all(|&n| n >= at_switch),
        "{public_vod}"
    );
    let (_, owner_vod) = api
        .get_text(&format!("/hls/{id}/source/index.m3u8"), Some(&creator))
        .await?;
    let (public_s, owner_s) = (
        playlist_duration(&public_vod),
        playlist_duration(&owner_vod),
    );
    assert!(
        (8.0..=16.0).contains(&public_s),
        "public VOD {public_s} s: {public_vod}"
    );
    assert!(
        owner_s >= public_s + 8.0,
        "owner VOD {owner_s} s, public {public_s} s"
    );
    let (_, ll_vod) = api
        .get_text(&format!("/hls/{id}/ll/source/index.m3u8"), None)
        .await?;
    assert!(
        numbers(&ll_vod, "seg").iter().all(|&n| n >= at_switch),
        "{ll_vod}"
    );
    assert!(
        (playlist_duration(&ll_vod) - public_s).abs() < 2.5,
        "{ll_vod}"
    );
    for path in [ts(0), ts(last_rehearsed), ll_seg(0)] {
        assert_eq!(api.status(&path, None).await?, 404, "{path} after the end");
        assert_eq!(api.status(&path, Some(&creator)).await?, 200, "{path}");
    }

    // The owner's recording holds everything; the public replay the public part, from its
    // first picture on.
    let recording_s = recording["duration_s"].as_f64().context("duration")?;
    assert!(
        (recording_s - owner_s).abs() < 1.5,
        "recording {recording_s} s, owner VOD {owner_s} s"
    );
    let recording = api.recording_ready(&creator, &id).await?;
    assert_eq!(recording["public_replay"]["state"], "ready", "{recording}");
    let replay_s = replay["duration_s"].as_f64().context("replay duration")?;
    assert!(
        (replay_s - public_s).abs() < 0.6,
        "replay {replay_s} s, public VOD {public_s} s"
    );
    assert!(
        replay.get("intervals").is_none(),
        "intervals are the owner's"
    );
    let file = server.data_dir().join("replay-download.mp4");
    download(&api, replay["download_url"].as_str().context("url")?, &file).await?;
    let (codecs, duration) = probe(&file.to_string_lossy()).await?;
    assert_eq!(codecs.len(), 2, "video and audio: {codecs:?}");
    assert!((duration.unwrap_or_default() - replay_s).abs() < 0.1);
    assert_eq!(
        first_picture(&file.to_string_lossy()).await?,
        first_picture(&api.url(&ts(first_public))).await?,
        "the replay starts on the first public picture"
    );
    // Chapters and clips: only the product shown in public, in replay seconds.
    let (_, chapters) = api
        .get(&format!("/api/v1/streams/{id}/chapters"), None)
        .await?;
    let chapters = chapters["chapters"].as_array().context("chapters")?.clone();
    assert_eq!(chapters.len(), 1, "{chapters:?}");
    assert_eq!(chapters[0]["product_id"], shown.as_str());
    let (_, owners) = api
        .get(&format!("/api/v1/streams/{id}/chapters"), Some(&creator))
        .await?;
    assert_eq!(owners["chapters"].as_array().map(Vec::len), Some(2));
    let clips = api.clips_cut(None, &id, 1).await?;
    assert_eq!(clips[0]["state"], "ready", "{clips:?}");
    assert_eq!(clips[0]["product_id"], shown.as_str());
    assert!(clips[0]["clip_end_s"].as_f64().unwrap_or(f64::MAX) <= replay_s + 0.1);
    server.stop().await;
    Ok(())
}

/// public → practice → public: the practice middle is cut from what the public gets (a
/// discontinuity in the VOD, two pieces in the replay), a chapter across the switch keeps its
/// public part, one inside the middle is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practice_interval_in_the_middle_is_cut_from_the_public_replay() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());
    let stream = api.create_stream(&creator, "three acts").await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    let (a, b) = (
        api.create_product(&creator, "a").await?,
        api.create_product(&creator, "b").await?,
    );
    api.set_carousel(&creator, &id, &[&a, &b]).await?;
    api.set_mode(&creator, &id, "public").await?;
    let publisher = Publish::small(90.0).spawn(&server.publish_url(&stream))?;
    source_segments(&api, &creator, &id, 1).await?;
    let (status, v) = api.focus(&creator, &id, Some(&a)).await?;
    assert_eq!(status, 200, "{v}");
    more_segments(&api, &creator, &id, 0, 3).await?;

    // The middle, in practice: product b shown and put away again.
    api.set_mode(&creator, &id, "practice").await?;
    let middle_from = owner_segments(&api, &creator, &id).await?;
    let (status, v) = api.focus(&creator, &id, Some(&b)).await?;
    assert_eq!(status, 200, "{v}");
    more_segments(&api, &creator, &id, middle_from, 2).await?;
    let (status, v) = api.focus(&creator, &id, None).await?;
    assert_eq!(status, 200, "{v}");
    more_segments(&api, &creator, &id, middle_from, 3).await?;
    into_a_segment().await;
    api.set_mode(&creator, &id, "public").await?;
    let middle_to = owner_segments(&api, &creator, &id).await?;
    more_segments(&api, &creator, &id, middle_to, 3).await?;
    end(&api, &creator, &id, publisher).await?;
    api.recording_ready(&creator, &id).await?;
    let replay = replay_ready(&api, &id).await?;

    let (_, vod) = api
        .get_text(&format!("/hls/{id}/source/index.m3u8"), None)
        .await?;
    let shown = numbers(&vod, "seg");
    assert!(
        shown.iter().all(|&n| n < middle_from || n > middle_to),
        "practice segments {middle_from}..={middle_to} listed: {vod}"
    );
    assert!(shown.iter().any(|&n| n < middle_from) && shown.iter().any(|&n| n > middle_to));
    assert_eq!(vod.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{vod}");
    let parsed =
        m3u8_rs::parse_media_playlist_res(vod.as_bytes()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let numbered: Vec<u64> = (0..parsed.segments.len() as u64)
        .map(|i| parsed.media_sequence + i)
        .collect();
    assert_eq!(
        numbered.len(),
        shown.len(),
        "numbered on its own, without holes"
    );
    for n in middle_from..middle_to {
        let path = format!("/hls/{id}/source/seg{n:05}.ts");
        assert_eq!(api.status(&path, None).await?, 404, "{path}");
    }
    let public_s = playlist_duration(&vod);
    let replay_s = replay["duration_s"].as_f64().context("duration")?;
    assert!(
        (replay_s - public_s).abs() < 0.8,
        "replay {replay_s} s, public VOD {public_s} s"
    );
    let (_, owner) = api
        .get(&format!("/api/v1/streams/{id}/recording"), Some(&creator))
        .await?;
    let intervals = owner["public_replay"]["intervals"]
        .as_array()
        .context("intervals")?;
    assert_eq!(intervals.len(), 2, "{owner}");

    // Chapters: a's is clipped to its public part, b's (all practice) is gone.
    let (_, chapters) = api
        .get(&format!("/api/v1/streams/{id}/chapters"), None)
        .await?;
    let chapters = chapters["chapters"].as_array().context("chapters")?.clone();
    assert_eq!(chapters.len(), 1, "{chapters:?}");
    assert_eq!(chapters[0]["product_id"], a.as_str());
    let end_s = chapters[0]["end_s"].as_f64().context("end")?;
    assert!(end_s <= replay_s + 0.1, "{chapters:?}");
    let clips = api.clips_cut(None, &id, 1).await?;
    assert_eq!(clips[0]["product_id"], a.as_str(), "{clips:?}");

    // Back in practice after the end: the signed clip link and the replay no longer open for
    // anyone but the owner.
    let link = clips[0]["download_url"].as_str().context("link")?;
    assert_eq!(api.http.get(link).send().await?.status(), 200);
    api.set_mode(&creator, &id, "practice").await?;
    assert_eq!(api.http.get(link).send().await?.status(), 404);
    let replay_file = format!("/replays/{id}.mp4");
    assert_eq!(api.status(&replay_file, None).await?, 404);
    assert_eq!(api.status(&replay_file, Some(&creator)).await?, 200);
    server.stop().await;
    Ok(())
}
