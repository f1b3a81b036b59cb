//! The product in focus on the video timeline: DATERANGE markers in every rendition at the media
//! time of the change, kept in the VOD list and across a publisher's reconnect; chapters and the
//! clips cut from them.
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use common::ws::{LiveClient, Token};
use common::*;
use serde_json::Value;

/// A DATERANGE as m3u8-rs reads it, with the segment it was written before.
#[derive(Debug, Clone)]
struct Range {
    start: DateTime<Utc>,
    duration_s: Option<f64>,
    product: String,
    /// PROGRAM-DATE-TIME range of the segment the tag comes before.
    segment: (DateTime<Utc>, DateTime<Utc>),
    after_discontinuity: bool,
}

/// The product markers of a media playlist by id; fails on a duplicate id.
fn ranges(text: &str) -> Result<BTreeMap<String, Range>> {
    let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e:?}: {text}"))?;
    let mut out = BTreeMap::new();
    let mut discontinuity = false;
    for s in &parsed.segments {
        discontinuity |= s.discontinuity;
        let Some(d) = &s.daterange else { continue };
        assert_eq!(d.class.as_deref(), Some("com.livefront.product"), "{text}");
        let pdt = s.program_date_time.context("segment date")?.to_utc();
        let end = pdt + chrono::Duration::milliseconds((s.duration * 1000.0).round() as i64);
        let product = d
            .x_prefixed
            .as_ref()
            .and_then(|x| x.get("X-PRODUCT-ID"))
            .map(|v| v.to_string().trim_matches('"').to_string())
            .context("X-PRODUCT-ID")?;
        let range = Range {
            start: d.start_date.to_utc(),
            duration_s: d.duration,
            product,
            segment: (pdt, end),
            after_discontinuity: discontinuity,
        };
        anyhow::ensure!(
            out.insert(d.id.clone(), range).is_none(),
            "marker {} written twice:\n{text}",
            d.id
        );
    }
    Ok(out)
}

/// The video packets of a file: (SHA-256 of the bytes, keyframe), in order.
async fn video_packets(file: &str) -> Result<Vec<(String, bool)>> {
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_data_hash",
            "SHA256",
            "-show_entries",
            "packet=data_hash,flags",
            "-of",
            "csv=p=0",
            file,
        ],
        DEADLINE,
    )
    .await?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .filter_map(|l| {
            let (flags, hash) = l.split_once(',')?;
            Some((hash.to_string(), flags.starts_with('K')))
        })
        .collect())
}

/// Codec parameters of every stream of a file, SPS/PPS and AAC config included (as hashes).
async fn stream_params(file: &str) -> Result<String> {
    let out = run(
        "ffprobe",
        &["-v", "error", "-show_data_hash", "SHA256", "-show_entries",
          "stream=codec_name,profile,level,width,height,pix_fmt,sample_rate,channels,extradata_hash",
          "-of", "csv=p=0", file],
        DEADLINE,
    )
    .await?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Waits until a rendition's playlist lists the markers `ids`, and returns the playlist.
async fn with_markers(api: &Api, token: &str, path: &str, ids: &[&str]) -> Result<String> {
    wait_for(&format!("markers {ids:?} in {path}"), DEADLINE, || async {
        let (status, text) = api.get_text(path, Some(token)).await.ok()?;
        let found = ranges(&text).ok()?;
        (status == 200 && ids.iter().all(|id| found.contains_key(*id))).then_some(text)
    })
    .await
}

/// Checks the markers of one rendition against the focus changes the API returned.
fn check_rendition(text: &str, changes: &[Value]) -> Result<BTreeMap<String, Range>> {
    let found = ranges(text)?;
    for (i, change) in changes.iter().enumerate() {
        let Some(product) = change["product_id"].as_str() else {
            continue;
        };
        let id = change["id"].as_str().unwrap();
        let r = found.get(id).with_context(|| format!("{id} in\n{text}"))?;
        assert_eq!(r.product, product);
        let announced: DateTime<Utc> = change["program_date_time"].as_str().unwrap().parse()?;
        // The date the API announced is the one the playlist carries (to the millisecond).
        assert!(
            (r.start - announced).num_milliseconds().abs() <= 1,
            "{id}: {:?} vs {announced}\n{text}",
            r.start
        );
        assert!(
            r.segment.0 <= r.start && r.start < r.segment.1,
            "{id} starts inside the segment it is written before: {r:?}\n{text}"
        );
        if let Some(next) = changes.get(i + 1) {
            // It ends where the next change is dated (a reconnect's time away included).
            let next: DateTime<Utc> = next["program_date_time"].as_str().unwrap().parse()?;
            let duration = r
                .duration_s
                .with_context(|| format!("{id} ended: {text}"))?;
            let end = r.start + chrono::Duration::milliseconds((duration * 1000.0).round() as i64);
            assert!(
                (end - next).num_milliseconds().abs() <= 1,
                "{id} lasts until the next change ({next}): {duration} s\n{text}"
            );
        }
    }
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn focus_changes_are_markers_in_every_rendition_kept_in_the_vod_and_chapters() -> Result<()> {
    let mut server = small_ladder_server().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    api.set_mode(&token, &id, "public").await?;
    let (lipstick, mascara) = (
        api.create_product(&token, "LIP").await?,
        api.create_product(&token, "MAS").await?,
    );
    let foreign = api.create_product(&token, "NOT-IN-CAROUSEL").await?;
    api.set_carousel(&token, &id, &[&lipstick, &mascara])
        .await?;

    let (status, v) = api.focus(&token, &id, Some(&lipstick)).await?;
    assert_eq!(status, 409, "not live yet: {v}");

    let publisher = Publish {
        size: "640x360",
        ..Publish::small(14.0)
    }
    .spawn(&server.publish_url(&stream))?;
    source_segments(&api, &token, &id, 1).await?;
    let (status, v) = api.focus(&token, &id, Some(&foreign)).await?;
    assert_eq!(status, 400, "only the carousel's products: {v}");
    let (status, v) = api.focus(&token, &id, Some("nonsense")).await?;
    assert_eq!(status, 400, "{v}");
    let viewer = api.create_creator("someone").await?;
    let (status, _) = api.focus(&viewer, &id, Some(&lipstick)).await?;
    assert_eq!(status, 403, "only the stream's creator");

    // A viewer on the live channel hears every change as it is made; one who joins later is told
    // the product in focus at once.
    let mut listening = LiveClient::connect(&api, &id, Token::None).await?;
    let mut changes = Vec::new();
    for product in [Some(&lipstick), Some(&mascara), None] {
        let (status, change) = api.focus(&token, &id, product.map(|p| p.as_str())).await?;
        assert_eq!(status, 200, "{change}");
        let heard = listening.expect("product_focused").await?;
        assert_eq!(heard["id"], change["id"]);
        assert_eq!(heard["media_time_ms"], change["media_time_ms"]);
        assert_eq!(heard["product_id"], change["product_id"]);
        if changes.is_empty() {
            let mut joining = LiveClient::connect(&api, &id, Token::None).await?;
            let told = joining.expect("product_focused").await?;
            assert_eq!(told["id"], change["id"], "{told}");
        }
        changes.push(change);
        tokio::time::sleep(Duration::from_millis(2_500)).await;
    }
    let (_, again) = api.focus(&token, &id, None).await?;
    assert_eq!(again, changes[2], "the same focus again changes nothing");
    let ms: Vec<u64> = changes
        .iter()
        .map(|c| c["media_time_ms"].as_u64().unwrap())
        .collect();
    assert!(ms.windows(2).all(|w| w[0] < w[1]), "{ms:?}");

    // Live: every rendition lists both markers, dated alike, low-latency (CMAF, master.m3u8)
    // and MPEG-TS (master-ts.m3u8).
    let mut renditions: Vec<String> = Vec::new();
    for master in ["master.m3u8", "master-ts.m3u8"] {
        let master = api.get_text(&format!("/hls/{id}/{master}"), None).await?.1;
        let found: Vec<String> = master
            .lines()
            .filter_map(|l| l.split_once("/index.m3u8"))
            .map(|(dir, _)| dir.to_string())
            .collect();
        assert_eq!(found.len(), 3, "{master}");
        renditions.extend(found);
    }
    assert!(
        renditions.iter().any(|r| r == "ll/source"),
        "{renditions:?}"
    );
    let ids = [
        changes[0]["id"].as_str().unwrap(),
        changes[1]["id"].as_str().unwrap(),
    ];
    for r in &renditions {
        let text = with_markers(&api, &token, &format!("/hls/{id}/{r}/event.m3u8"), &ids).await?;
        check_rendition(&text, &changes)?;
    }

    let (status, stderr) = finish(publisher, DEADLINE).await?;
    assert!(status.success(), "{stderr}");
    let recording = api.recording_ready(&token, &id).await?;

    // The VOD lists of every rendition keep them, the same in each.
    let mut seen = Vec::new();
    for r in &renditions {
        let (_, vod) = api
            .get_text(&format!("/hls/{id}/{r}/index.m3u8"), None)
            .await?;
        assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
        let found = check_rendition(&vod, &changes)?;
        assert_eq!(found.len(), 2, "{vod}");
        seen.push(
            found
                .into_iter()
                .map(|(id, r)| (id, r.start))
                .collect::<Vec<_>>(),
        );
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");

    // Chapters: one per product, in recording seconds, ending at the next change.
    let (status, v) = api
        .get(&format!("/api/v1/streams/{id}/chapters"), None)
        .await?;
    assert_eq!(status, 200, "{v}");
    let chapters = v["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), 2, "{v}");
    for (i, c) in chapters.iter().enumerate() {
        assert_eq!(c["product_id"], changes[i]["product_id"]);
        assert_eq!(c["start_s"].as_f64().unwrap(), ms[i] as f64 / 1000.0);
        assert_eq!(c["end_s"].as_f64().unwrap(), ms[i + 1] as f64 / 1000.0);
        assert!(c["end_s"].as_f64().unwrap() <= recording["duration_s"].as_f64().unwrap());
    }
    assert_eq!(chapters[0]["title"], "Product LIP");

    // Clips: one per chapter, cut without re-encoding from the recording.
    let clips = api.clips_cut(None, &id, 2).await?;
    let recording_file = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    let source_packets = video_packets(recording_file.to_str().unwrap()).await?;
    let source_params = stream_params(recording_file.to_str().unwrap()).await?;
    for (i, clip) in clips.iter().enumerate() {
        assert_eq!(clip["state"], "ready", "{clip}");
        assert_eq!(clip["product_id"], changes[i]["product_id"]);
        let url = clip["download_url"]
            .as_str()
            .unwrap()
            .replace("localhost", "127.0.0.1");
        let file = server.data_dir().join(format!("clip{i}.mp4"));
        let bytes = reqwest::get(&url)
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        assert_eq!(bytes.len() as u64, clip["bytes"].as_u64().unwrap());
        std::fs::write(&file, &bytes)?;
        let file = file.to_str().unwrap();
        // Same codec parameters as the recording (profile, level, size, SPS/PPS, AAC config).
        assert_eq!(stream_params(file).await?, source_params, "{clip}");
        // Every video packet is a packet of the recording, byte for byte and in order: nothing
        // was re-encoded. The first is a keyframe.
        let packets = video_packets(file).await?;
        let first = source_packets
            .iter()
            .position(|p| p.0 == packets[0].0)
            .context("the clip's first packet is in the recording")?;
        assert!(packets[0].1, "the clip starts on a keyframe");
        assert_eq!(
            packets.iter().map(|p| &p.0).collect::<Vec<_>>(),
            source_packets[first..first + packets.len()]
                .iter()
                .map(|p| &p.0)
                .collect::<Vec<_>>(),
            "{clip}"
        );
        // It covers its chapter, starting at most one GOP (2 s) early.
        let (start, end) = (
            chapters[i]["start_s"].as_f64().unwrap(),
            chapters[i]["end_s"].as_f64().unwrap(),
        );
        let (cut_start, cut_end) = (
            clip["clip_start_s"].as_f64().unwrap(),
            clip["clip_end_s"].as_f64().unwrap(),
        );
        assert!(
            cut_start <= start + 0.001 && start - cut_start <= 2.0 + 0.034,
            "{clip}"
        );
        // Every frame shown before the end is kept; with the publisher's 2 B-frames the frames
        // they need run on by up to 3 frames (100 ms at 30 fps).
        assert!(cut_end >= end - 0.001 && cut_end - end <= 0.101, "{clip}");
        let (_, duration) = probe(file).await?;
        let duration = duration.context("clip duration")?;
        assert!(
            (duration - (cut_end - cut_start)).abs() <= 0.1,
            "{duration} s: {clip}"
        );
    }
    let (status, _) = api
        .get(&format!("/api/v1/streams/{id}/clips"), Some(&viewer))
        .await?;
    assert_eq!(status, 200, "a public stream's clips are listed to anyone");
    let (status, _) = api.focus(&token, &id, Some(&lipstick)).await?;
    assert_eq!(status, 409, "no focus after the end");
    server.stop().await;
    Ok(())
}

/// A marker started before a publisher drops and one started after it came back: each once, the
/// first ending where the second starts, the second dated on the resumed timeline; and the
/// marker open at the end closes with the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_survive_a_reconnect_once_each() -> Result<()> {
    let mut server =
        Server::start_with(|c| c.ingest.reconnect_grace = Duration::from_secs(20)).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let (a, b) = (
        api.create_product(&token, "A").await?,
        api.create_product(&token, "B").await?,
    );
    api.set_carousel(&token, &id, &[&a, &b]).await?;
    let url = server.publish_url(&stream);

    let first = Publish::small(60.0).spawn(&url)?;
    source_segments(&api, &token, &id, 1).await?;
    let (_, first_focus) = api.focus(&token, &id, Some(&a)).await?;
    source_segments(&api, &token, &id, 3).await?;
    crash(&api, &token, &id, first).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let second = Publish::small(60.0).spawn(&url)?;
    wait_for("the comeback's segments", DEADLINE, || async {
        let (_, text) = api
            .get_text(&format!("/hls/{id}/source/index.m3u8"), Some(&token))
            .await
            .ok()?;
        let after = text.split("#EXT-X-DISCONTINUITY\n").nth(1)?;
        (after.matches("#EXTINF").count() >= 2).then_some(())
    })
    .await?;
    let (status, second_focus) = api.focus(&token, &id, Some(&b)).await?;
    assert_eq!(status, 200, "{second_focus}");
    let ids = [
        first_focus["id"].as_str().unwrap(),
        second_focus["id"].as_str().unwrap(),
    ];
    with_markers(
        &api,
        &token,
        &format!("/hls/{id}/source/index.m3u8"),
        &ids[1..],
    )
    .await?;
    api.end_stream(&token, &id).await?;
    finish(second, DEADLINE).await?;
    api.recording_ready(&token, &id).await?;

    // MPEG-TS and low-latency CMAF alike.
    for rendition in ["source", "ll/source"] {
        let (_, vod) = api
            .get_text(&format!("/hls/{id}/{rendition}/index.m3u8"), Some(&token))
            .await?;
        let found = check_rendition(&vod, &[first_focus.clone(), second_focus.clone()])?;
        assert_eq!(found.len(), 2, "{vod}");
        assert!(!found[ids[0]].after_discontinuity, "{vod}");
        assert!(found[ids[1]].after_discontinuity, "{vod}");
        let last = found[ids[1]].clone();
        let closed = last
            .duration_s
            .context("the open marker ends with the stream")?;
        let parsed = m3u8_rs::parse_media_playlist_res(vod.as_bytes()).unwrap();
        let seg = parsed.segments.last().unwrap();
        let stream_end = seg.program_date_time.unwrap().to_utc()
            + chrono::Duration::milliseconds((seg.duration * 1000.0).round() as i64);
        let marker_end =
            last.start + chrono::Duration::milliseconds((closed * 1000.0).round() as i64);
        assert_eq!(marker_end, stream_end, "{rendition}: {vod}");
    }
    server.stop().await;
    Ok(())
}
