//! Low-latency HLS (RFC 8216bis) end to end with real publishers and players: CMAF parts,
//! blocking playlist reload, preload hints, rendition reports, delta updates, the MPEG-TS
//! fallback, practice access, and a publisher's comeback.
mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::*;

/// A low-latency media playlist, read line by line (m3u8-rs has no LL-HLS types).
#[derive(Debug, Default)]
struct LlPlaylist {
    version: u64,
    media_sequence: u64,
    part_target: f64,
    part_hold_back: f64,
    can_block: bool,
    skipped: u64,
    segments: Vec<LlSegment>,
    /// Parts after the last closed segment.
    open: Vec<LlPart>,
    open_discontinuity: bool,
    hint: Option<String>,
    /// (uri, last msn, last part)
    reports: Vec<(String, u64, u64)>,
    maps: Vec<String>,
}

#[derive(Debug, Default, Clone)]
struct LlSegment {
    msn: u64,
    duration: f64,
    uri: String,
    discontinuity: bool,
    parts: Vec<LlPart>,
}

#[derive(Debug, Clone)]
struct LlPart {
    duration: f64,
    uri: String,
    independent: bool,
}

/// `KEY=VALUE,KEY="VALUE"` → value of `key`.
fn attr<'a>(list: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let (k, after) = rest.split_once('=')?;
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], quoted[end + 1..].trim_start_matches(','))
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        if k == key {
            return Some(value);
        }
        rest = next;
    }
    None
}

fn parse_ll(text: &str) -> Result<LlPlaylist> {
    ensure!(text.starts_with("#EXTM3U"), "not a playlist: {text}");
    let mut pl = LlPlaylist::default();
    let mut pending = LlSegment::default();
    let mut duration = None;
    for line in text.lines() {
        let (tag, value) = line.split_once(':').unwrap_or((line, ""));
        match tag {
            "#EXT-X-VERSION" => pl.version = value.parse()?,
            "#EXT-X-MEDIA-SEQUENCE" => pl.media_sequence = value.parse()?,
            "#EXT-X-PART-INF" => {
                pl.part_target = attr(value, "PART-TARGET")
                    .context(line.to_string())?
                    .parse()?
            }
            "#EXT-X-SERVER-CONTROL" => {
                pl.can_block = attr(value, "CAN-BLOCK-RELOAD") == Some("YES");
                pl.part_hold_back = attr(value, "PART-HOLD-BACK")
                    .context(line.to_string())?
                    .parse()?;
            }
            "#EXT-X-SKIP" => {
                pl.skipped = attr(value, "SKIPPED-SEGMENTS")
                    .context(line.to_string())?
                    .parse()?
            }
            "#EXT-X-MAP" => pl
                .maps
                .push(attr(value, "URI").context(line.to_string())?.to_string()),
            "#EXT-X-DISCONTINUITY" => pending.discontinuity = true,
            "#EXT-X-PART" => pending.parts.push(LlPart {
                duration: attr(value, "DURATION").context(line.to_string())?.parse()?,
                uri: attr(value, "URI").context(line.to_string())?.to_string(),
                independent: attr(value, "INDEPENDENT") == Some("YES"),
            }),
            "#EXTINF" => duration = Some(value.trim_end_matches(',').parse::<f64>()?),
            "#EXT-X-PRELOAD-HINT" => pl.hint = attr(value, "URI").map(str::to_string),
            "#EXT-X-RENDITION-REPORT" => pl.reports.push((
                attr(value, "URI").context(line.to_string())?.to_string(),
                attr(value, "LAST-MSN").context(line.to_string())?.parse()?,
                attr(value, "LAST-PART")
                    .context(line.to_string())?
                    .parse()?,
            )),
            _ if !line.starts_with('#') && !line.is_empty() => {
                let mut seg = std::mem::take(&mut pending);
                seg.msn = pl.media_sequence + pl.skipped + pl.segments.len() as u64;
                seg.duration = duration.take().context("EXTINF before the URI")?;
                seg.uri = line.to_string();
                pl.segments.push(seg);
            }
            _ => {}
        }
    }
    pl.open = pending.parts;
    pl.open_discontinuity = pending.discontinuity;
    Ok(pl)
}

impl LlPlaylist {
    /// (msn, part index) of the newest part.
    fn edge(&self) -> (u64, u64) {
        let open_msn = self.media_sequence + self.skipped + self.segments.len() as u64;
        match self.open.len() {
            0 => {
                let last = self.segments.last().expect("a segment");
                (last.msn, last.parts.len().saturating_sub(1) as u64)
            }
            n => (open_msn, n as u64 - 1),
        }
    }

    /// Whether part `p` of segment `m` (or anything later) is listed.
    fn lists(&self, m: u64, p: u64) -> bool {
        let (em, ep) = self.edge();
        em > m || (em == m && ep >= p)
    }
}

async fn ll_playlist(
    api: &Api,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String, Duration)> {
    let started = Instant::now();
    let (status, text) = api.get_text(path, token).await?;
    Ok((status, text, started.elapsed()))
}

/// Every rendition of a small ladder as CMAF with parts: parts add up to their segment, each
/// segment starts with an independent part, the other renditions are reported, a blocking reload
/// waits for the part it names, the hinted part blocks until complete, requests too far ahead get
/// 400, delta updates skip, and ffprobe reads the same master as plain HLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rendition_is_served_as_low_latency_hls() -> Result<()> {
    let mut server = small_ladder_server().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let publisher = Publish {
        size: "480x360",
        ..Publish::small(24.0)
    }
    .spawn(&server.publish_url(&stream))?;
    let tok = Some(token.as_str());

    // The master points at the low-latency renditions.
    let master = wait_for("a master with every rendition", DEADLINE, || async {
        let (s, t) = api
            .get_text(&format!("/hls/{id}/master.m3u8"), tok)
            .await
            .ok()?;
        (s == 200 && t.matches("#EXT-X-STREAM-INF").count() == 3).then_some(t)
    })
    .await?;
    let renditions: Vec<String> = master
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let path = l.split('?').next().unwrap();
            path.strip_prefix("ll/")
                .and_then(|p| p.strip_suffix("/index.m3u8"))
                .map(str::to_string)
                .with_context(|| format!("a low-latency media playlist: {l}"))
        })
        .collect::<Result<_>>()?;
    ensure!(renditions.len() == 3, "{master}");

    let base = |r: &str| format!("/hls/{id}/ll/{r}/index.m3u8");
    for r in &renditions {
        let pl = wait_for(
            &format!("{r}: two segments with parts"),
            DEADLINE,
            || async {
                let (s, t) = api.get_text(&base(r), tok).await.ok()?;
                let pl = parse_ll(&t).ok()?;
                (s == 200 && pl.segments.iter().filter(|s| !s.parts.is_empty()).count() >= 2)
                    .then_some(pl)
            },
        )
        .await?;
        ensure!(pl.version >= 6 && pl.can_block, "{r}: {pl:?}");
        // PART-TARGET is the configured 200 ms, or, in the source, the longest part where the
        // publisher's B-frames stretched one (the muxer cuts in decode order). Every part fits
        // in it but the stream's very first, which starts with its earliest sample.
        ensure!(
            pl.part_target >= 0.2 && pl.part_target <= 0.4,
            "{r}: {pl:?}"
        );
        if r != "source" {
            ensure!((pl.part_target - 0.2).abs() < 1e-9, "{r}: {pl:?}");
        }
        let parts = pl.segments.iter().flat_map(|s| &s.parts).chain(&pl.open);
        for part in parts.filter(|p| p.uri != "part00000.0.m4s") {
            ensure!(
                part.duration <= pl.part_target + 1e-9,
                "{r}: {part:?} > PART-TARGET"
            );
        }
        // The configured hold-back (2 parts by default), never under RFC 8216bis's minimum.
        ensure!(
            (pl.part_hold_back - 2.0 * pl.part_target).abs() < 0.0015,
            "{r}: {pl:?}"
        );
        ensure!(pl.maps.len() == 1, "{r}: one init section: {pl:?}");
        for seg in pl.segments.iter().filter(|s| !s.parts.is_empty()) {
            let sum: f64 = seg.parts.iter().map(|p| p.duration).sum();
            ensure!(
                (sum - seg.duration).abs() < 0.0015,
                "{r}: parts of {} add up to {sum:.5} s, EXTINF {:.3}",
                seg.uri,
                seg.duration
            );
            ensure!(
                seg.parts[0].independent,
                "{r}: {} starts with a keyframe",
                seg.uri
            );
            ensure!(
                seg.parts[1..].iter().all(|p| !p.independent),
                "{r}: one keyframe per segment (2 s GOP): {seg:?}"
            );
            ensure!(
                (seg.duration - 2.0).abs() < 0.05,
                "{r}: segment on the 2 s grid: {seg:?}"
            );
        }
        let others: Vec<&String> = renditions.iter().filter(|o| *o != r).collect();
        ensure!(
            pl.reports.len() == others.len(),
            "{r}: reports {:?}",
            pl.reports
        );
        for (uri, _, _) in &pl.reports {
            ensure!(
                others.iter().any(|o| uri == &format!("../{o}/index.m3u8")),
                "{r}: report {uri}"
            );
        }
        // Transcoded rungs have no B-frames: every part but a segment's last is exactly 200 ms
        // (but for the stream's very first, which starts with the earliest sample).
        if r != "source" {
            for seg in pl
                .segments
                .iter()
                .filter(|s| !s.parts.is_empty() && s.msn > 0)
            {
                let n = seg.parts.len();
                ensure!(
                    seg.parts[..n - 1]
                        .iter()
                        .all(|p| (p.duration - 0.2).abs() < 0.0005),
                    "{r}: {seg:?}"
                );
            }
        }
    }

    // Blocking reload: ask for the part after the newest; the answer lists it.
    let r = "source";
    let (_, now) = api.get_text(&base(r), tok).await?;
    let now = parse_ll(&now)?;
    let (m, p) = now.edge();
    let (next_m, next_p) = (m, p + 1);
    ensure!(!now.lists(next_m, next_p));
    let (status, text, waited) = ll_playlist(
        &api,
        &format!("{}?_HLS_msn={next_m}&_HLS_part={next_p}", base(r)),
        tok,
    )
    .await?;
    ensure!(status == 200, "{status}: {text}");
    let after = parse_ll(&text)?;
    ensure!(
        after.lists(next_m, next_p),
        "waited {waited:?} for {next_m}.{next_p}: {text}"
    );
    eprintln!("blocking reload for part {next_m}.{next_p} answered after {waited:?}");

    // A whole segment: _HLS_msn alone waits until it is complete.
    let want = after.edge().0;
    let (status, text, _) = ll_playlist(&api, &format!("{}?_HLS_msn={want}", base(r)), tok).await?;
    ensure!(status == 200, "{status}: {text}");
    ensure!(
        parse_ll(&text)?.segments.last().unwrap().msn >= want,
        "{text}"
    );

    // The hinted part: requested before it exists, answered when complete.
    let (_, text) = api.get_text(&base(r), tok).await?;
    let pl = parse_ll(&text)?;
    let hint = pl.hint.clone().context("a preload hint")?;
    ensure!(
        !pl.open.iter().any(|p| p.uri == hint),
        "the hint is not listed yet"
    );
    let hinted = api
        .http
        .get(api.url(&format!("/hls/{id}/ll/{r}/{hint}")))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(hinted.status() == 200, "{}", hinted.status());
    ensure!(hinted.headers()["content-type"] == "video/mp4");
    ensure!(
        hinted.headers()["cache-control"]
            .to_str()?
            .contains("immutable"),
        "parts are cached for good"
    );
    let bytes = hinted.bytes().await?;
    ensure!(
        &bytes[4..8] == b"moof",
        "a part is a CMAF chunk: {:?}",
        &bytes[..8]
    );
    let (_, text) = api.get_text(&base(r), tok).await?;
    let listed = parse_ll(&text)?;
    let all_parts = listed
        .segments
        .iter()
        .flat_map(|s| &s.parts)
        .chain(&listed.open);
    ensure!(
        all_parts.into_iter().any(|p| p.uri == hint),
        "the hinted part is listed now: {text}"
    );

    // Init section and a whole segment from disk.
    let init = api
        .http
        .get(api.url(&format!("/hls/{id}/ll/{r}/{}", listed.maps[0])))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(init.status() == 200);
    ensure!(&init.bytes().await?[4..8] == b"ftyp");
    let seg = &listed.segments[0].uri;
    let seg = api
        .http
        .get(api.url(&format!("/hls/{id}/ll/{r}/{seg}")))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(seg.status() == 200);

    // Too far ahead, or malformed: 400 at once, not kept by caches.
    let (m, _) = listed.edge();
    for query in [
        format!("_HLS_msn={}", m + 3),
        format!("_HLS_msn={m}&_HLS_part=50"),
        "_HLS_part=1".to_string(),
        "_HLS_msn=abc".to_string(),
    ] {
        let resp = api
            .http
            .get(api.url(&format!("{}?{query}", base(r))))
            .bearer_auth(&token)
            .send()
            .await?;
        ensure!(resp.status() == 400, "{query}: {}", resp.status());
        ensure!(resp.headers()["cache-control"] == "no-store", "{query}");
    }
    // A part that will never be: 404.
    let resp = api
        .http
        .get(api.url(&format!("/hls/{id}/ll/{r}/part{:05}.0.m4s", m + 5)))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(resp.status() == 404 && resp.headers()["cache-control"] == "no-store");

    // Delta update: the window (six segments) is shorter than CAN-SKIP-UNTIL (six target
    // durations), so nothing may be skipped yet; the answer is a full playlist.
    let (status, text) = api
        .get_text(&format!("{}?_HLS_skip=YES", base(r)), tok)
        .await?;
    ensure!(status == 200 && parse_ll(&text)?.skipped == 0, "{text}");

    // Players without low-latency HLS read the same master as plain HLS.
    let watch_url = stream["playback"]["hls"].as_str().context("playback.hls")?;
    ensure!(watch_url.contains("/master.m3u8"), "{watch_url}");
    let (streams, _) = probe(watch_url).await?;
    ensure!(
        streams.iter().any(|s| s == "h264") && streams.iter().any(|s| s == "aac"),
        "{streams:?}"
    );
    // And the MPEG-TS renditions stay at master-ts.m3u8.
    let (status, ts) = api
        .get_text(&format!("/hls/{id}/master-ts.m3u8"), tok)
        .await?;
    ensure!(
        status == 200 && ts.contains("source/index.m3u8") && !ts.contains("ll/"),
        "{ts}"
    );

    // The server's share of the latency: last frame of a part in → part listed.
    let (_, metrics) = api.get_text("/metrics", None).await?;
    let median: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("livefront_ll_part_latency_seconds{quantile=\"0.5\"} "))
        .with_context(|| format!("part latency in the metrics: {metrics}"))?
        .parse()?;
    ensure!(median > 0.0 && median < 5.0, "{median}");
    eprintln!(
        "last frame of a part -> part listed, median {:.0} ms",
        median * 1000.0
    );

    let (status, stderr) = finish(publisher, DEADLINE).await?;
    ensure!(status.success(), "{stderr}");
    api.recording_ready(&token, &id).await?;
    // Once ended, the low-latency list is a VOD list of whole segments.
    let (_, vod) = api.get_text(&base(r), tok).await?;
    ensure!(
        vod.contains("#EXT-X-ENDLIST") && !vod.contains("#EXT-X-PART:"),
        "{vod}"
    );
    let vod = parse_ll(&vod)?;
    ensure!(vod.segments.len() >= 10, "{vod:?}");
    server.stop().await;
    Ok(())
}

/// A practice stream's low-latency URLs answer 404 to everyone but the creator, blocking ones
/// included and at once; a blocked request with nothing coming (the publisher dropped) gets 503
/// after three target durations; the publisher's comeback continues the numbering after a
/// discontinuity, with a new init section for its new size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn practice_access_a_dropped_publisher_and_its_comeback() -> Result<()> {
    let mut server =
        Server::start_with(|c| c.ingest.reconnect_grace = Duration::from_secs(30)).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    ensure!(stream["mode"] == "practice", "{stream}");
    let id = stream["id"].as_str().unwrap().to_string();
    let url = server.publish_url(&stream);
    let tok = Some(token.as_str());
    let index = format!("/hls/{id}/ll/source/index.m3u8");

    let first = Publish::small(60.0).spawn(&url)?;
    let pl = wait_for("two segments with parts", DEADLINE, || async {
        let (s, t) = api.get_text(&index, tok).await.ok()?;
        let pl = parse_ll(&t).ok()?;
        (s == 200 && pl.segments.len() >= 2).then_some(pl)
    })
    .await?;
    let (m, p) = pl.edge();
    let part = &pl.segments[0].parts[0].uri;
    for path in [
        format!("/hls/{id}/master.m3u8"),
        index.clone(),
        format!("{index}?_HLS_msn={m}&_HLS_part={}", p + 1),
        format!("{index}?_HLS_msn={}", m + 1),
        format!("/hls/{id}/ll/source/event.m3u8"),
        format!("/hls/{id}/ll/source/{part}"),
        format!("/hls/{id}/ll/source/{}", pl.maps[0]),
        format!("/hls/{id}/ll/source/{}", pl.segments[0].uri),
    ] {
        let started = Instant::now();
        let status = api.status(&path, None).await?;
        ensure!(status == 404, "{path}: {status} for a stranger");
        ensure!(
            started.elapsed() < Duration::from_secs(2),
            "{path}: refused at once, not after a wait"
        );
        ensure!(
            api.status(&path, tok).await? == 200,
            "{path}: 200 for the creator"
        );
    }

    // The publisher drops: a request for the next part waits, then 503 (not cached).
    let away = crash(&api, &token, &id, first).await?;
    ensure!(away["state"] == "live", "{away}");
    let (_, now) = api.get_text(&index, tok).await?;
    let (m, p) = parse_ll(&now)?.edge();
    let started = Instant::now();
    let resp = api
        .http
        .get(api.url(&format!("{index}?_HLS_msn={m}&_HLS_part={}", p + 1)))
        .bearer_auth(&token)
        .send()
        .await?;
    let waited = started.elapsed();
    ensure!(resp.status() == 503, "{}", resp.status());
    ensure!(resp.headers()["cache-control"] == "no-store");
    ensure!(
        waited >= Duration::from_secs(5),
        "held about three target durations: {waited:?}"
    );

    // It comes back at another size.
    let second = Publish {
        size: "480x360",
        ..Publish::small(6.0)
    };
    let (status, stderr) = finish(second.spawn(&url)?, DEADLINE).await?;
    ensure!(status.success(), "{stderr}");
    api.recording_ready(&token, &id).await?;
    let (_, vod) = api
        .get_text(&format!("/hls/{id}/ll/source/event.m3u8"), tok)
        .await?;
    let vod = parse_ll(&vod)?;
    let numbers: Vec<u64> = vod
        .segments
        .iter()
        .map(|s| {
            s.uri
                .trim_start_matches("seg")
                .trim_end_matches(".m4s")
                .parse()
                .unwrap()
        })
        .collect();
    ensure!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1) && numbers[0] == 0,
        "continuous numbering: {numbers:?}"
    );
    let discontinuities: Vec<usize> = vod
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.discontinuity)
        .map(|(i, _)| i)
        .collect();
    ensure!(discontinuities.len() == 1, "one discontinuity: {vod:?}");
    ensure!(
        vod.maps.len() == 2,
        "a new init section for the new size: {:?}",
        vod.maps
    );
    // The comeback's segments play: ffprobe reads the new size from them.
    let back = &vod.segments[discontinuities[0]];
    let dir = server
        .data_dir()
        .join("streams")
        .join(&id)
        .join("hls/ll/source");
    let init = std::fs::read(dir.join(&vod.maps[1]))?;
    let mut file = init.clone();
    file.extend(std::fs::read(dir.join(&back.uri))?);
    let joined = server.data_dir().join("comeback.mp4");
    std::fs::write(&joined, &file)?;
    let size = video_size(&joined).await?;
    ensure!(size == (480, 360), "the comeback picture: {size:?}");
    server.stop().await;
    Ok(())
}

/// `GET path` with the creator's token: (status, body).
async fn fetch(api: &Api, path: &str, token: &str) -> Result<(u16, Vec<u8>)> {
    let resp = api
        .http
        .get(api.url(path))
        .bearer_auth(token)
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.bytes().await?.to_vec()))
}

/// Once its segment is closed, a part is served from the segment's file: byte for byte what was
/// served from memory while the segment was being written, and the segment's parts, one after
/// the other, are its file. Strangers still get 404 for it (a practice stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_segments_parts_are_served_from_its_file_as_they_were_live() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let tok = Some(token.as_str());
    let dir = format!("/hls/{id}/ll/source");
    let index = format!("{dir}/index.m3u8");
    let publisher = Publish::small(30.0).spawn(&server.publish_url(&stream))?;

    // A segment being written, with a part or more listed.
    let pl = wait_for("an open segment with parts", DEADLINE, || async {
        let (s, t) = api.get_text(&index, tok).await.ok()?;
        let pl = parse_ll(&t).ok()?;
        (s == 200 && !pl.segments.is_empty() && !pl.open.is_empty()).then_some(pl)
    })
    .await?;
    let (open, _) = pl.edge();

    // Each of its parts as soon as it is listed; kept as served live when the segment was still
    // open after the part came (so it came from memory).
    let mut live = Vec::new();
    for p in 0.. {
        let (status, text) = api
            .get_text(&format!("{index}?_HLS_msn={open}&_HLS_part={p}"), tok)
            .await?;
        ensure!(status == 200, "{status}: {text}");
        let pl = parse_ll(&text)?;
        if pl.segments.iter().any(|s| s.msn == open) {
            break;
        }
        let uri = pl
            .open
            .get(p as usize)
            .with_context(|| format!("part {open}.{p} listed: {text}"))?
            .uri
            .clone();
        let (status, bytes) = fetch(&api, &format!("{dir}/{uri}"), &token).await?;
        ensure!(status == 200, "{uri}: {status}");
        let (_, after) = api.get_text(&index, tok).await?;
        if parse_ll(&after)?.edge().0 == open {
            live.push((uri, bytes));
        }
    }
    ensure!(
        live.len() >= 3,
        "parts served while their segment was open: {}",
        live.len()
    );

    // The segment closed: its parts now come from its file.
    let (status, text) = api
        .get_text(&format!("{index}?_HLS_msn={open}"), tok)
        .await?;
    ensure!(status == 200, "{status}: {text}");
    let pl = parse_ll(&text)?;
    let closed = pl
        .segments
        .iter()
        .find(|s| s.msn == open)
        .with_context(|| format!("segment {open} listed: {text}"))?;
    for (uri, bytes) in &live {
        let (status, again) = fetch(&api, &format!("{dir}/{uri}"), &token).await?;
        ensure!(status == 200, "{uri}: {status}");
        ensure!(
            &again == bytes,
            "{uri}: {} bytes from the file, {} served live",
            again.len(),
            bytes.len()
        );
        ensure!(
            api.status(&format!("{dir}/{uri}"), None).await? == 404,
            "{uri}: not for strangers"
        );
    }
    let mut joined = Vec::new();
    for part in &closed.parts {
        let (status, bytes) = fetch(&api, &format!("{dir}/{}", part.uri), &token).await?;
        ensure!(status == 200, "{}: {status}", part.uri);
        joined.extend(bytes);
    }
    let (status, segment) = fetch(&api, &format!("{dir}/{}", closed.uri), &token).await?;
    ensure!(status == 200, "{}: {status}", closed.uri);
    ensure!(
        joined == segment,
        "{} parts of {} make {} bytes, the file has {}",
        closed.parts.len(),
        closed.uri,
        joined.len(),
        segment.len()
    );

    let (status, stderr) = finish(publisher, DEADLINE).await?;
    ensure!(status.success(), "{stderr}");
    server.stop().await;
    Ok(())
}
