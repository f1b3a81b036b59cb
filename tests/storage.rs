//! Object storage (`storage.url`): closed HLS segments go to a real S3-compatible server (moto's
//! server mode, installed by scripts/install-s3-test-server.sh) while the stream is live;
//! finished recordings, public replays, clips, posters and the rest of the ended stream's HLS
//! media follow at its end, and are served from it through livefront.
mod common;

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use common::s3::*;
use common::*;
use livefront::config::Config;

/// Publishes `seconds` of a public stream and lets the publisher finish (which ends the stream).
async fn publish_public(server: &Server, seconds: f64) -> Result<String> {
    let (api, token) = (&server.api, &server.demo_token);
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    api.set_mode(token, &id, "public").await?;
    let publisher = Publish::small(seconds).spawn(&server.publish_url(&server.demo_stream))?;
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    anyhow::ensure!(status.success(), "ffmpeg failed: {stderr}");
    Ok(id)
}

/// Publishes `seconds` of a public stream with a product in focus from its first segment to its
/// third (one chapter, so one clip), and lets the publisher finish.
async fn publish_public_with_a_chapter(server: &Server, seconds: f64) -> Result<String> {
    let (api, token) = (&server.api, &server.demo_token);
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    let product = api.create_product(token, "LIP").await?;
    api.set_carousel(token, &id, &[&product]).await?;
    api.set_mode(token, &id, "public").await?;
    let publisher = Publish::small(seconds).spawn(&server.publish_url(&server.demo_stream))?;
    let playlist = format!("/hls/{id}/source/index.m3u8");
    api.playlist_with_segments(&playlist, 1).await?;
    let (status, v) = api.focus(token, &id, Some(&product)).await?;
    anyhow::ensure!(status == 200, "{v}");
    api.playlist_with_segments(&playlist, 3).await?;
    let (status, v) = api.focus(token, &id, None).await?;
    anyhow::ensure!(status == 200, "{v}");
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    anyhow::ensure!(status.success(), "ffmpeg failed: {stderr}");
    Ok(id)
}

async fn wait_for_object(s3: &S3Server, key: &str) -> Result<u64> {
    wait_for(&format!("{key} in the bucket"), DEADLINE, || async {
        let listed = s3.list(key).await.ok()?;
        listed.into_iter().find(|(k, _)| k == key).map(|(_, n)| n)
    })
    .await
}

/// The duration ffprobe reads from a URL.
async fn duration_of(url: &str) -> Result<f64> {
    let (codecs, duration) = probe(url).await?;
    anyhow::ensure!(codecs.iter().any(|c| c == "h264"), "{url}: {codecs:?}");
    duration.context("no duration")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_media_goes_to_the_bucket_and_is_served_from_it() -> Result<()> {
    let s3 = S3Server::start(0).await?;
    let mut server = Server::start_with(|c| s3.configure(c)).await?;
    let id = publish_public_with_a_chapter(&server, 8.0).await?;
    let (api, token) = (&server.api, server.demo_token.clone());
    let rec = api.recording_ready(&token, &id).await?;
    let bytes = rec["bytes"].as_u64().unwrap();

    // The recording is in the bucket, whole, and gone from the disk.
    let prefix = format!("streams/{id}/");
    assert_eq!(
        wait_for_object(&s3, &format!("{prefix}recording.mp4")).await?,
        bytes
    );
    let paths = server.data_dir().join("streams").join(&id);
    wait_for("the local recording removed", DEADLINE, || async {
        (!paths.join("recording.mp4").exists()).then_some(())
    })
    .await?;
    // The rest of the stream's media follows in the same pass; the posters are copied.
    let keys = wait_for("the HLS media archived", DEADLINE, || async {
        let keys: Vec<String> = s3
            .list(&prefix)
            .await
            .ok()?
            .into_iter()
            .map(|k| k.0)
            .collect();
        let has = |end: &str| keys.iter().any(|k| k.ends_with(end));
        (has("replay.mp4") && has("thumbnail.jpg") && has(".ts") && has(".m4s")).then_some(keys)
    })
    .await?;
    // The final playlists are copied to the bucket and stay on the disk (served from there).
    let playlist = format!("{prefix}hls/source/event.m3u8");
    wait_for_object(&s3, &playlist).await?;
    assert!(paths.join("hls/source/event.m3u8").exists());
    assert!(!paths.join("replay.mp4").exists());
    let local_segments = std::fs::read_dir(paths.join("hls/source"))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ts"))
        .count();
    assert_eq!(local_segments, 0, "segments are served from the bucket");

    // The download comes from the bucket, with Range requests.
    let download = rec["download_url"].as_str().unwrap().to_string();
    let duration = duration_of(&download).await?;
    assert!((6.5..=9.5).contains(&duration), "recording of {duration} s");
    let resp = api
        .http
        .get(&download)
        .header("Range", "bytes=100-199")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 100-199/{bytes}").as_str()
    );
    assert!(
        resp.headers()["content-disposition"]
            .to_str()?
            .starts_with("attachment")
    );
    assert_eq!(resp.bytes().await?.len(), 100);
    // A range that is not a plain byte range is not passed on: the whole file.
    let odd = api
        .http
        .get(&download)
        .header("Range", "bytes=1-2;x=\"y\"")
        .send()
        .await?;
    assert_eq!(odd.status().as_u16(), 200);
    assert_eq!(odd.bytes().await?.len() as u64, bytes);
    let full = api.http.get(&download).send().await?;
    assert_eq!(full.status().as_u16(), 200);
    assert_eq!(full.bytes().await?.len() as u64, bytes);

    // The public replay: its MP4 and the HLS VOD (both formats) play through livefront.
    let replay = duration_of(&api.url(&format!("/replays/{id}.mp4"))).await?;
    assert!((6.5..=9.5).contains(&replay), "replay of {replay} s");
    for master in ["master.m3u8", "master-ts.m3u8"] {
        let vod = duration_of(&api.url(&format!("/hls/{id}/{master}"))).await?;
        assert!((6.0..=9.5).contains(&vod), "{master}: {vod} s");
    }

    // The clip of the chapter: in the bucket, gone from the disk, served from the bucket.
    let clips = api.clips_cut(None, &id, 1).await?;
    assert_eq!(clips[0]["state"], "ready", "{clips:?}");
    let clip_keys: Vec<&String> = keys.iter().filter(|k| k.contains("/clips/")).collect();
    assert_eq!(clip_keys.len(), 1, "{keys:?}");
    assert_eq!(std::fs::read_dir(paths.join("clips"))?.count(), 0);
    let clip = duration_of(clips[0]["download_url"].as_str().unwrap()).await?;
    assert!((1.0..=6.0).contains(&clip), "clip of {clip} s");

    // The poster: from the bucket once the disk's copy is gone.
    for poster in ["thumbnail.jpg", "thumbnail-public.jpg"] {
        let _ = std::fs::remove_file(paths.join(poster));
    }
    let resp = api
        .http
        .get(api.url(&format!("/api/v1/streams/{id}/thumbnail.jpg")))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.bytes().await?.starts_with(&[0xff, 0xd8]));

    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_while_the_store_is_down_loses_nothing_and_happens_once_it_is_back() -> Result<()>
{
    let mut s3 = S3Server::start(0).await?;
    let port = s3.port;
    let mut server = Server::start_with(|c| s3.configure(c)).await?;
    // Down before the stream ends.
    s3.stop().await;
    let id = publish_public(&server, 4.0).await?;
    let (api, token) = (&server.api, server.demo_token.clone());
    let rec = api.recording_ready(&token, &id).await?;
    let download = rec["download_url"].as_str().unwrap().to_string();
    let recording = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    // Served from the disk meanwhile.
    let duration = duration_of(&download).await?;
    assert!((2.5..=5.5).contains(&duration), "recording of {duration} s");
    assert!(
        recording.exists(),
        "kept on the disk while the store is down"
    );

    // Back (empty, as moto keeps nothing: the bucket is made again): the retry uploads it.
    let s3 = S3Server::start(port).await?;
    let key = format!("streams/{id}/recording.mp4");
    assert_eq!(
        wait_for_object(&s3, &key).await?,
        rec["bytes"].as_u64().unwrap()
    );
    wait_for("the local recording removed", DEADLINE, || async {
        (!recording.exists()).then_some(())
    })
    .await?;
    let again = duration_of(&download).await?;
    assert!((again - duration).abs() < 0.01, "{again} vs {duration}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_left_on_disk_is_archived_at_the_next_start() -> Result<()> {
    // A stream recorded without object storage (or whose upload a stop cut short)…
    let mut server = Server::start().await?;
    let id = publish_public(&server, 3.0).await?;
    let rec = server.api.recording_ready(&server.demo_token, &id).await?;
    server.stop().await;
    let recording = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    assert!(recording.exists());
    // …goes to the bucket when the server starts with one.
    let s3 = S3Server::start(0).await?;
    let mut config = test_config(&server.data_dir());
    s3.configure(&mut config);
    let app = livefront::app::App::start(config).await?;
    let key = format!("streams/{id}/recording.mp4");
    assert_eq!(
        wait_for_object(&s3, &key).await?,
        rec["bytes"].as_u64().unwrap()
    );
    wait_for("the local recording removed", DEADLINE, || async {
        (!recording.exists()).then_some(())
    })
    .await?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    let (status, v) = api
        .get(
            &format!("/api/v1/streams/{id}/recording"),
            Some(&server.demo_token),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    let duration = duration_of(v["download_url"].as_str().unwrap()).await?;
    assert!((1.5..=4.5).contains(&duration), "recording of {duration} s");
    app.stop().await;
    Ok(())
}

#[tokio::test]
async fn bad_storage_settings_are_refused_at_start_up_with_the_reason() -> Result<()> {
    init_logs();
    let start = |adjust: Box<dyn FnOnce(&mut Config)>| async move {
        let dir = tempfile::tempdir()?;
        let mut config = test_config(dir.path());
        config.storage.access_key = Some("k".into());
        config.storage.secret_key = Some("s".into());
        adjust(&mut config);
        match livefront::app::App::start(config).await {
            Ok(app) => {
                app.stop().await;
                bail!("started")
            }
            Err(e) => anyhow::Ok(e.to_string()),
        }
    };
    let e = start(Box::new(|c| c.storage.url = Some("s3://bucket".into()))).await?;
    assert!(e.contains("storage.url") && e.contains("endpoint"), "{e}");
    let e = start(Box::new(|c| {
        c.storage.url = Some("https://bucket.example".into())
    }))
    .await?;
    assert!(e.contains("storage.url") && e.contains("s3://"), "{e}");

    // Well formed, but nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let e = start(Box::new(move |c| {
        c.storage.url = Some(format!("s3://media?endpoint=http://127.0.0.1:{closed}"))
    }))
    .await?;
    assert!(e.contains("unreachable") && e.contains("media"), "{e}");

    // A server without that bucket.
    let s3 = S3Server::start(0).await?;
    let endpoint = s3.endpoint();
    let e = start(Box::new(move |c| {
        c.storage.url = Some(format!("s3://no-such-bucket?endpoint={endpoint}"))
    }))
    .await?;
    assert!(e.contains("no such bucket"), "{e}");
    Ok(())
}

#[tokio::test]
async fn a_big_file_goes_up_in_parts_and_comes_back_whole() -> Result<()> {
    use livefront::storage::{Storage, s3::S3};
    let s3 = S3Server::start(0).await?;
    let dir = tempfile::tempdir()?;
    let mut config = test_config(dir.path());
    s3.configure(&mut config);
    let url = livefront::config::storage::StorageUrl::parse(config.storage.url.as_deref().unwrap())
        .map_err(anyhow::Error::msg)?;
    let part = 5 * 1024 * 1024;
    let client = S3::new(&url, "test-access", "test-secret")?.with_part_size(part);
    let storage = Storage::with_bucket(dir.path(), client);
    let path = dir.path().join("streams/x/recording.mp4");
    std::fs::create_dir_all(path.parent().unwrap())?;
    let contents: Vec<u8> = (0..2 * part + 12345).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &contents)?;
    storage.archive(&path).await?;
    assert!(!path.exists(), "removed once the bucket holds it");
    let listed = s3.list("streams/x/").await?;
    assert_eq!(
        listed,
        [("streams/x/recording.mp4".to_string(), contents.len() as u64)]
    );
    let whole = storage.read(&path).await?.context("stored")?;
    assert!(whole[..] == contents[..], "the same bytes come back");
    let tail = storage
        .get(&path, Some("bytes=-10"))
        .await?
        .context("stored")?;
    assert_eq!(tail.status().as_u16(), 206);
    assert_eq!(tail.bytes().await?[..], contents[contents.len() - 10..]);
    Ok(())
}

/// Keys (and sizes) of the bucket under `prefix`.
async fn objects(s3: &S3Server, prefix: &str) -> Result<HashMap<String, u64>> {
    Ok(s3.list(prefix).await?.into_iter().collect())
}

/// A segment or an init section (not a playlist, recording, poster…).
fn is_segment(key: &str) -> bool {
    key.contains("/hls/")
        && (key.ends_with(".ts")
            || key.ends_with(".m4s")
            || key
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with("init")))
}

/// Numbers of the segments the bucket holds in the folder `dir` (`…/hls/source/`) with `ext`.
fn segment_numbers(keys: &HashMap<String, u64>, dir: &str, ext: &str) -> Vec<u32> {
    let mut numbers: Vec<u32> = keys
        .keys()
        .filter_map(|k| k.strip_prefix(dir)?.strip_prefix("seg")?.strip_suffix(ext))
        .filter_map(|n| n.parse().ok())
        .collect();
    numbers.sort();
    numbers
}

/// Whether the bucket holds `n` closed segments of each of `renditions` of stream `id`, as
/// MPEG-TS and as CMAF (with an init section).
fn holds_segments(keys: &HashMap<String, u64>, id: &str, renditions: &[&str], n: usize) -> bool {
    renditions.iter().all(|r| {
        let (ts, ll) = (
            format!("streams/{id}/hls/{r}/"),
            format!("streams/{id}/hls/ll/{r}/"),
        );
        let init = keys.keys().any(|k| k.starts_with(&format!("{ll}init")));
        segment_numbers(keys, &ts, ".ts").len() >= n
            && segment_numbers(keys, &ll, ".m4s").len() >= n
            && init
    })
}

/// The segment URIs a media playlist lists.
fn listed_uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// The value of a counter or gauge in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_segments_of_every_rendition_go_up_while_live_and_only_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s3 = S3Server::start_logging(0, &dir.path().join("requests.jsonl")).await?;
    let preset = dir.path().join("small.toml");
    std::fs::write(&preset, SMALL_LADDER)?;
    let mut server = Server::start_with(|c| {
        s3.configure(c);
        c.hls.ladder = preset.to_string_lossy().into_owned();
    })
    .await?;
    let (api, token) = (&server.api, server.demo_token.clone());
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    api.set_mode(&token, &id, "public").await?;
    let publisher = Publish::small(10.0).spawn(&server.publish_url(&server.demo_stream))?;
    let prefix = format!("streams/{id}/");

    // While live: the first closed segments of every rendition, in both formats, are there (a
    // 240-line source leaves the ladder's 240p rung out).
    let renditions = ["source", "144p"];
    wait_for("closed segments of every rendition", DEADLINE, || async {
        let keys = objects(&s3, &prefix).await.ok()?;
        holds_segments(&keys, &id, &renditions, 2).then_some(())
    })
    .await?;
    let live = api.stream(&token, &id).await?;
    assert_eq!(live["state"], "live", "{live}");
    let uploads = &live["health"]["uploads"];
    // Two segments of two renditions in two formats, and two init sections.
    assert!(uploads["uploaded"].as_u64().unwrap() >= 10, "{uploads}");
    assert_eq!(uploads["failures"], 0, "{uploads}");
    assert!(uploads["failing"].is_null(), "{uploads}");

    // The live playlists follow, listing only segments that are there already.
    let playlist_key = format!("{prefix}hls/source/event.m3u8");
    let playlist = wait_for("a live playlist in the bucket", DEADLINE, || async {
        let bytes = s3.get(&playlist_key).await.ok()??;
        let text = String::from_utf8(bytes.to_vec()).ok()?;
        (text.contains("#EXTINF") && !text.contains("#EXT-X-ENDLIST")).then_some(text)
    })
    .await?;
    let keys = objects(&s3, &prefix).await?;
    for uri in listed_uris(&playlist) {
        let key = format!("{prefix}hls/source/{uri}");
        assert!(
            keys.contains_key(&key),
            "{key} listed, not there: {playlist}"
        );
    }

    // A normal end: the rest (recording, replay, posters, final playlists) goes up, and no
    // segment a second time.
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    anyhow::ensure!(status.success(), "ffmpeg failed: {stderr}");
    api.recording_ready(&token, &id).await?;
    let paths = server.data_dir().join("streams").join(&id);
    wait_for("the archive step done", DEADLINE, || async {
        let keys = objects(&s3, &prefix).await.ok()?;
        let done = keys.contains_key(&format!("{prefix}recording.mp4"))
            && keys.contains_key(&format!("{prefix}replay.mp4"))
            && !paths.join("recording.mp4").exists();
        done.then_some(())
    })
    .await?;
    let final_playlist = wait_for("the final playlist in the bucket", DEADLINE, || async {
        let text = String::from_utf8(s3.get(&playlist_key).await.ok()??.to_vec()).ok()?;
        text.contains("#EXT-X-ENDLIST").then_some(text)
    })
    .await?;
    let keys = objects(&s3, &prefix).await?;
    for uri in listed_uris(&final_playlist) {
        assert!(
            keys.contains_key(&format!("{prefix}hls/source/{uri}")),
            "{uri}"
        );
    }
    let segments: Vec<&String> = keys.keys().filter(|k| is_segment(k)).collect();
    let puts = s3.puts()?;
    for key in &segments {
        assert_eq!(puts.get(*key), Some(&1), "PUTs of {key}");
    }
    // All of them while live: the archive step found them there.
    let live_uploads = metric(api, "livefront_storage_live_uploads_total").await?;
    assert_eq!(live_uploads, segments.len() as u64, "{segments:?}");
    assert_eq!(
        metric(api, "livefront_storage_live_upload_waiting").await?,
        0
    );
    assert_eq!(
        metric(api, "livefront_storage_live_upload_failures_total").await?,
        0
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_stream_leaves_its_closed_segments_in_the_bucket() -> Result<()> {
    let s3 = S3Server::start(0).await?;
    let dir = tempfile::tempdir()?;
    let url = format!("s3://{BUCKET}?endpoint={}&region=us-east-1", s3.endpoint());
    let env = [
        ("LIVEFRONT_STORAGE_URL", url.as_str()),
        ("LIVEFRONT_STORAGE_ACCESS_KEY", "test-access"),
        ("LIVEFRONT_STORAGE_SECRET_KEY", "test-secret"),
    ];
    let server = Process::start_with_env(dir.path(), &env).await?;
    let token = server.api.create_creator("alice").await?;
    let stream = server.api.create_stream(&token, "crash me").await?;
    let id = stream["id"].as_str().unwrap().to_string();
    let key = stream["stream_key"].as_str().unwrap();
    let mut publisher = Publish::small(60.0).spawn(&format!("{}/{key}", server.rtmp_url))?;
    let prefix = format!("streams/{id}/");
    let playlist_key = format!("{prefix}hls/source/event.m3u8");
    wait_for(
        "segments and a playlist in the bucket",
        DEADLINE,
        || async {
            let keys = objects(&s3, &prefix).await.ok()?;
            let text = String::from_utf8(s3.get(&playlist_key).await.ok()??.to_vec()).ok()?;
            (holds_segments(&keys, &id, &["source"], 3) && text.matches("#EXTINF").count() >= 2)
                .then_some(())
        },
    )
    .await?;
    server.signal("KILL")?;
    let mut child = server.child;
    child.wait().await?;
    publisher.start_kill()?;
    publisher.wait().await?;

    // What the dead server left: its closed segments from the first on, each whole (as on its
    // disk), and a playlist that lists only segments that are there.
    let keys = objects(&s3, &prefix).await?;
    let local = dir.path();
    for (folder, ext) in [("hls/source/", ".ts"), ("hls/ll/source/", ".m4s")] {
        let numbers = segment_numbers(&keys, &format!("{prefix}{folder}"), ext);
        assert!(numbers.len() >= 3, "{folder}: {numbers:?}");
        let unbroken: Vec<u32> = (0..numbers.len() as u32).collect();
        assert_eq!(numbers, unbroken, "{folder}");
    }
    for (key, size) in keys.iter().filter(|(k, _)| is_segment(k)) {
        let on_disk = std::fs::metadata(local.join(key))?.len();
        assert_eq!(*size, on_disk, "{key}");
    }
    let playlist = String::from_utf8(s3.get(&playlist_key).await?.context("playlist")?.to_vec())?;
    assert!(!playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    for uri in listed_uris(&playlist) {
        let key = format!("{prefix}hls/source/{uri}");
        assert!(
            keys.contains_key(&key),
            "{key} listed, not there: {playlist}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_down_mid_stream_holds_nothing_up_and_uploads_catch_up() -> Result<()> {
    let mut s3 = S3Server::start(0).await?;
    let port = s3.port;
    let mut server = Server::start_with(|c| s3.configure(c)).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    let _publisher = Publish::small(60.0).spawn(&server.publish_url(&server.demo_stream))?;
    let prefix = format!("streams/{id}/");
    let first = format!("{prefix}hls/source/seg00000.ts");
    wait_for_object(&s3, &first).await?;

    // Down: publishing goes on, the failures show in health.
    s3.stop().await;
    let failing = wait_for("failing uploads in health", DEADLINE, || async {
        let v = api.stream(&token, &id).await.ok()?;
        let uploads = &v["health"]["uploads"];
        (uploads["failures"].as_u64()? > 0 && uploads["failing"].is_string()).then_some(v)
    })
    .await?;
    let warnings = failing["health"]["warnings"].to_string();
    assert!(warnings.contains("object storage"), "{warnings}");
    let (_, healthz) = api.get_text("/healthz", None).await?;
    assert!(healthz.contains("live upload failing"), "{healthz}");
    let listed = source_segments(&api, &token, &id, 1).await?;
    let closed = listed.matches("#EXTINF").count();
    source_segments(&api, &token, &id, closed + 2).await?;

    // Back (empty: moto keeps nothing, the bucket is made again): the segments that waited go up
    // while the stream is still live.
    let s3 = S3Server::start(port).await?;
    let caught_up = format!("{prefix}hls/source/seg{:05}.ts", closed + 1);
    wait_for_object(&s3, &caught_up).await?;
    wait_for("uploads caught up", DEADLINE, || async {
        let v = api.stream(&token, &id).await.ok()?;
        let uploads = &v["health"]["uploads"];
        (uploads["failing"].is_null() && uploads["waiting"] == 0).then_some(())
    })
    .await?;
    assert_eq!(api.stream(&token, &id).await?["state"], "live");
    let (_, healthz) = api.get_text("/healthz", None).await?;
    assert!(!healthz.contains("object storage"), "{healthz}");

    // At the end, the archive step uploads what the bucket lost (the segments before the
    // outage) and what it has is not uploaded again.
    api.end_stream(&token, &id).await?;
    let rec = api.recording_ready(&token, &id).await?;
    assert_eq!(
        wait_for_object(&s3, &format!("{prefix}recording.mp4")).await?,
        rec["bytes"].as_u64().unwrap()
    );
    wait_for_object(&s3, &first).await?;
    server.stop().await;
    Ok(())
}

/// Segment numbers named in a playlist (`segNNNNN.ts` / `.m4s`).
fn segment_numbers_in(playlist: &str) -> Vec<u64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("seg")?.split('.').next()?.parse().ok())
        .collect()
}

/// A node whose disk never had an ended stream's files (another node of a cluster, or this one
/// on a new disk) serves them from the bucket under the same rule as the node that made them:
/// the rehearsal stays its owner's, by playlist, by name and by poster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_files_keeps_the_rehearsal_private() -> Result<()> {
    let s3 = S3Server::start(0).await?;
    let mut server = Server::start_with(|c| s3.configure(c)).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().context("id")?.to_string();
    let publisher = Publish::small(60.0).spawn(&server.publish_url(&stream))?;
    let rehearsal = source_segments(&api, &token, &id, 2).await?;
    api.set_mode(&token, &id, "public").await?;
    let (_, owners) = api
        .get_text(&format!("/hls/{id}/source/event.m3u8"), Some(&token))
        .await?;
    let at_switch = segment_numbers_in(&owners).last().map_or(0, |n| n + 1);
    assert!(at_switch >= 2, "{rehearsal}");
    let index = format!("/hls/{id}/source/index.m3u8");
    wait_for("two public segments", DEADLINE, || async {
        let (status, text) = api.get_text(&index, None).await.ok()?;
        let public = segment_numbers_in(&text);
        (status == 200 && public.iter().filter(|&&n| n >= at_switch).count() >= 2).then_some(())
    })
    .await?;
    api.end_stream(&token, &id).await?;
    finish(publisher, DEADLINE).await?;
    api.recording_ready(&token, &id).await?;
    let prefix = format!("streams/{id}/");
    for key in [
        "hls/source/public.m3u8",
        "hls/ll/source/public.m3u8",
        "hls/public-media.json",
        "thumbnail-public.jpg",
    ] {
        wait_for_object(&s3, &format!("{prefix}{key}")).await?;
    }
    server.stop().await;

    // The same store and bucket, a disk without the stream.
    std::fs::remove_dir_all(server.data_dir().join("streams").join(&id))?;
    let mut config = test_config(&server.data_dir());
    s3.configure(&mut config);
    let app = livefront::app::App::start(config).await?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    for rehearsed in [
        format!("/hls/{id}/source/seg00000.ts"),
        format!("/hls/{id}/ll/source/seg00000.m4s"),
    ] {
        assert_eq!(api.status(&rehearsed, None).await?, 404, "{rehearsed}");
        assert_eq!(
            api.status(&rehearsed, Some(&token)).await?,
            200,
            "{rehearsed}"
        );
    }
    for list in [
        index.clone(),
        format!("/hls/{id}/source/event.m3u8"),
        format!("/hls/{id}/ll/source/index.m3u8"),
    ] {
        let (status, text) = api.get_text(&list, None).await?;
        let listed = segment_numbers_in(&text);
        assert_eq!(status, 200, "{list}: {text}");
        assert!(
            !listed.is_empty() && listed.iter().all(|&n| n >= at_switch),
            "{list} lists the rehearsal to the public: {text}"
        );
        let (_, text) = api.get_text(&list, Some(&token)).await?;
        assert_eq!(
            segment_numbers_in(&text).first(),
            Some(&0),
            "{list}: {text}"
        );
    }
    let (status, master) = api
        .get_text(&format!("/hls/{id}/master.m3u8"), None)
        .await?;
    assert_eq!(status, 200, "{master}");
    let poster = api
        .get_bytes(&format!("/api/v1/streams/{id}/thumbnail.jpg"), None)
        .await?;
    let public_poster = s3.get(&format!("{prefix}thumbnail-public.jpg")).await?;
    assert_eq!(
        Some(poster.as_slice()),
        public_poster.as_deref(),
        "the public poster"
    );
    app.stop().await;
    Ok(())
}
