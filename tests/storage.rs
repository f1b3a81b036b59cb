//! Object storage (`storage.url`): finished recordings, public replays, clips, posters and the
//! ended stream's HLS media go to a real S3-compatible server (moto's server mode, installed by
//! scripts/install-s3-test-server.sh) and are served from it through livefront.
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use common::*;
use livefront::config::Config;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BUCKET: &str = "livefront-test";
const SIGNED: Duration = Duration::from_secs(600);

/// The moto server the install script put in place.
fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("LIVEFRONT_MOTO_SERVER") {
        return p.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home).join(".cache/livefront/moto-5.2.5/bin/moto_server")
}

/// A real S3-compatible server on a loopback port, killed when dropped.
struct S3Server {
    child: Option<Child>,
    port: u16,
}

impl S3Server {
    /// On a free port (`0`) or a given one (a restart), with the test bucket created.
    async fn start(port: u16) -> Result<S3Server> {
        let path = moto_server();
        if !path.exists() {
            bail!(
                "{} is missing: run scripts/install-s3-test-server.sh (make test does)",
                path.display()
            );
        }
        let mut child = Command::new(&path)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
        let bound = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    return Ok(digits.parse::<u16>()?);
                }
            }
            bail!("moto_server exited before it listened")
        };
        let port = tokio::time::timeout(DEADLINE, bound)
            .await
            .context("moto_server did not start")??;
        // Keep reading its log so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let server = S3Server {
            child: Some(child),
            port,
        };
        let bucket = server.bucket();
        let url = bucket.create_bucket(&creds()).sign(SIGNED);
        let put = reqwest::Client::new()
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, "0");
        let response = put.send().await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "creating the bucket: {status} {text}");
        Ok(server)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn bucket(&self) -> Bucket {
        Bucket::new(
            self.endpoint().parse().unwrap(),
            UrlStyle::Path,
            BUCKET,
            "us-east-1",
        )
        .unwrap()
    }

    fn configure(&self, config: &mut Config) {
        config.storage.url = Some(format!(
            "s3://{BUCKET}?endpoint={}&region=us-east-1",
            self.endpoint()
        ));
        config.storage.access_key = Some("test-access".into());
        config.storage.secret_key = Some("test-secret".into());
    }

    /// Keys and sizes under `prefix`, through the S3 API.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let bucket = self.bucket();
        let creds = creds();
        let mut action = bucket.list_objects_v2(Some(&creds));
        action.with_prefix(prefix);
        let text = reqwest::get(action.sign(SIGNED)).await?.text().await?;
        let page = rusty_s3::actions::ListObjectsV2::parse_response(&text)?;
        Ok(page
            .contents
            .into_iter()
            .map(|c| (c.key, c.size.unwrap_or(0)))
            .collect())
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

fn creds() -> Credentials {
    Credentials::new("test-access", "test-secret")
}

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
    assert!(
        keys.iter().all(|k| !k.ends_with(".m3u8")),
        "playlists stay on the disk: {keys:?}"
    );
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
