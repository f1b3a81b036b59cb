//! Test harness: a real livefront (in-process or the built binary) on 127.0.0.1 ephemeral ports
//! with a temporary data dir and the real SQLite store; real publishers and players as child
//! processes that are killed when dropped.
#![allow(dead_code)]

pub mod hooks;
pub mod nats;
pub mod postgres;
pub mod receivers;
pub mod s3;
pub mod watchdog;
pub mod ws;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use livefront::app::App;
use livefront::config::Config;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// Generous deadline for anything media-related on a loaded 2-core CI machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// URLs about one stream; `{id}` is replaced. Every URL that could reveal a stream gets a row:
/// practice streams (tests/privacy.rs) and taken-down ones (tests/trust.rs) must answer each of
/// them exactly as an unknown id does for anyone but their creator and the admin. (Low-latency
/// parts live in memory while live only: tests/llhls.rs checks them on a live practice stream.)
pub const PER_STREAM: &[&str] = &[
    "/api/v1/streams/{id}",
    "/api/v1/streams/{id}/recording",
    "/api/v1/streams/{id}/thumbnail.jpg",
    "/api/v1/streams/{id}/products",
    "/api/v1/streams/{id}/chapters",
    "/api/v1/streams/{id}/clips",
    "/api/v1/streams/{id}/promos",
    "/api/v1/streams/{id}/chat",
    "/api/v1/streams/{id}/links",
    "/api/v1/streams/{id}/sales",
    "/api/v1/streams/{id}/destinations",
    "/clips/{id}/1.mp4",
    "/hls/{id}/master.m3u8",
    "/hls/{id}/source/index.m3u8",
    "/hls/{id}/source/event.m3u8",
    "/hls/{id}/source/seg00000.ts",
    "/hls/{id}/source/seg00001.ts",
    "/hls/{id}/master-ts.m3u8",
    "/hls/{id}/ll/source/index.m3u8",
    "/hls/{id}/ll/source/index.m3u8?_HLS_msn=1&_HLS_part=0",
    "/hls/{id}/ll/source/event.m3u8",
    "/hls/{id}/ll/source/init00000.mp4",
    "/hls/{id}/ll/source/seg00000.m4s",
    "/recordings/{id}.mp4",
    "/api/v1/streams/{id}/replay",
    "/replays/{id}.mp4",
    "/watch/{id}",
    "/embed/{id}",
    "/api/v1/streams/{id}/viewer",
];

/// URLs that list or count streams: hidden ids must not appear.
pub const LISTINGS: &[&str] = &[
    "/api/v1/live",
    "/api/v1/home",
    "/api/v1/categories",
    "/api/v1/creators/demo/storefront",
    "/api/v1/streams",
    "/api/v1/me/notifications",
    "/metrics",
];

/// Polls `f` until it returns `Some`, or fails after `deadline` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if start.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An HTTP client speaking to one server.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self::with_client(base, reqwest::Client::new())
    }

    pub fn with_client(base: &str, http: reqwest::Client) -> Self {
        Api {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
        self.request(reqwest::Method::GET, path, token, None).await
    }

    pub async fn get_text(&self, path: &str, token: Option<&str>) -> Result<(u16, String)> {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }

    /// The body of a 200 answer (an error otherwise).
    pub async fn get_bytes(&self, path: &str, token: Option<&str>) -> Result<Vec<u8>> {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        anyhow::ensure!(resp.status() == 200, "{path}: {}", resp.status());
        Ok(resp.bytes().await?.to_vec())
    }

    pub async fn status(&self, path: &str, token: Option<&str>) -> Result<u16> {
        Ok(self.get_text(path, token).await?.0)
    }

    pub async fn create_stream(&self, creator_token: &str, title: &str) -> Result<Value> {
        let (status, v) = self
            .request(
                reqwest::Method::POST,
                "/api/v1/streams",
                Some(creator_token),
                Some(json!({"title": title})),
            )
            .await?;
        anyhow::ensure!(status == 201, "create stream: {status} {v}");
        Ok(v)
    }

    /// A call that must succeed (2xx): its JSON.
    pub async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let (status, v) = self
            .request(method.clone(), path, Some(token), body)
            .await?;
        anyhow::ensure!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        Ok(v)
    }

    /// Registers a viewer; its token.
    /// `POST /api/v1/viewers`: the status and body, whatever they are.
    pub async fn try_register_viewer(&self, handle: &str) -> Result<(u16, Value)> {
        self.request(
            reqwest::Method::POST,
            "/api/v1/viewers",
            None,
            Some(serde_json::json!({ "handle": handle })),
        )
        .await
    }

    pub async fn register_viewer(&self, handle: &str) -> Result<String> {
        let (status, v) = self.try_register_viewer(handle).await?;
        anyhow::ensure!(status == 201, "viewer {handle}: {status} {v}");
        Ok(v["token"].as_str().context("viewer token")?.to_string())
    }

    pub async fn create_creator(&self, handle: &str) -> Result<String> {
        let (status, v) = self
            .request(
                reqwest::Method::POST,
                "/api/v1/creators",
                Some(ADMIN_TOKEN),
                Some(json!({"handle": handle})),
            )
            .await?;
        anyhow::ensure!(status == 201, "create creator: {status} {v}");
        Ok(v["token"].as_str().context("token")?.to_string())
    }

    pub async fn set_mode(&self, token: &str, id: &str, mode: &str) -> Result<()> {
        let (status, v) = self
            .request(
                reqwest::Method::PUT,
                &format!("/api/v1/streams/{id}/mode"),
                Some(token),
                Some(json!({"mode": mode})),
            )
            .await?;
        anyhow::ensure!(status == 200, "set mode: {status} {v}");
        Ok(())
    }

    /// `POST /api/v1/streams/{id}/end` as `token`: the status and answer.
    async fn request_end(&self, token: &str, id: &str) -> Result<(u16, Value)> {
        let path = format!("/api/v1/streams/{id}/end");
        self.request(reqwest::Method::POST, &path, Some(token), None)
            .await
    }

    /// Ends stream `id` as `token` (200 expected); returns the stream as the answer gives it.
    pub async fn end_stream(&self, token: &str, id: &str) -> Result<Value> {
        let (status, v) = self.request_end(token, id).await?;
        anyhow::ensure!(status == 200, "end stream: {status} {v}");
        Ok(v)
    }

    /// Ends stream `id` after its publisher finished, unless the reconnect grace (2 s in tests)
    /// ended it first, which a loaded machine may let happen before the call.
    pub async fn end_stream_after_publish(&self, token: &str, id: &str) -> Result<()> {
        let (status, v) = self.request_end(token, id).await?;
        let ended_already = status == 409 && v.to_string().contains("already ended");
        anyhow::ensure!(status == 200 || ended_already, "end stream: {status} {v}");
        Ok(())
    }

    pub async fn stream(&self, token: &str, id: &str) -> Result<Value> {
        let (status, v) = self
            .get(&format!("/api/v1/streams/{id}"), Some(token))
            .await?;
        anyhow::ensure!(status == 200, "get stream: {status} {v}");
        Ok(v)
    }

    /// A product in the creator's catalog (`Product {sku}`, 12.50 EUR); returns its id.
    pub async fn create_product(&self, token: &str, sku: &str) -> Result<String> {
        let body = json!({"sku": sku, "title": format!("Product {sku}"), "price": "12.50", "currency": "EUR"});
        let (status, p) = self
            .request(
                reqwest::Method::POST,
                "/api/v1/products",
                Some(token),
                Some(body),
            )
            .await?;
        anyhow::ensure!(status == 201, "{p}");
        Ok(p["id"].as_str().context("product id")?.to_string())
    }

    /// Replaces a stream's carousel.
    pub async fn set_carousel(&self, token: &str, id: &str, products: &[&str]) -> Result<()> {
        let path = format!("/api/v1/streams/{id}/products");
        let body = json!({ "product_ids": products });
        let (status, v) = self
            .request(reqwest::Method::PUT, &path, Some(token), Some(body))
            .await?;
        anyhow::ensure!(status == 200, "{v}");
        Ok(())
    }

    /// Focuses a product of a live stream (`None` clears); the status and answer.
    pub async fn focus(
        &self,
        token: &str,
        id: &str,
        product: Option<&str>,
    ) -> Result<(u16, Value)> {
        let path = format!("/api/v1/streams/{id}/focus");
        let body = json!({ "product_id": product });
        self.request(reqwest::Method::PUT, &path, Some(token), Some(body))
            .await
    }

    /// Waits until a stream's `n` clips are cut (none `cutting`); returns them.
    pub async fn clips_cut(&self, token: Option<&str>, id: &str, n: usize) -> Result<Vec<Value>> {
        wait_for(&format!("{n} clips cut"), DEADLINE, || async {
            let (_, v) = self
                .get(&format!("/api/v1/streams/{id}/clips"), token)
                .await
                .ok()?;
            let clips = v["clips"].as_array()?.clone();
            (clips.len() == n && clips.iter().all(|c| c["state"] != "cutting")).then_some(clips)
        })
        .await
    }

    /// Waits until the recording reaches `ready` (or fails the test on `failed`).
    pub async fn recording_ready(&self, token: &str, id: &str) -> Result<Value> {
        wait_for("recording ready", DEADLINE, || async {
            let (_, v) = self
                .get(&format!("/api/v1/streams/{id}/recording"), Some(token))
                .await
                .ok()?;
            match v["state"].as_str() {
                Some("ready") | Some("failed") => Some(v),
                _ => None,
            }
        })
        .await
        .and_then(|v| {
            anyhow::ensure!(v["state"] == "ready", "recording failed: {v}");
            Ok(v)
        })
    }

    /// Waits until a media playlist lists at least `n` segments; returns its text.
    pub async fn playlist_with_segments(&self, url: &str, n: usize) -> Result<String> {
        wait_for(&format!("{n} segments in {url}"), DEADLINE, || async {
            let (status, text) = self.get_text(url, None).await.ok()?;
            (status == 200 && text.matches("#EXTINF").count() >= n).then_some(text)
        })
        .await
    }
}

/// How many criticals GStreamer has logged in this test process (a `g_return_if_fail` that failed:
/// a bug, in GStreamer or in how it is used), counted from the first call on. Each one is still
/// printed.
pub fn gstreamer_criticals() -> usize {
    use gstreamer::glib;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static HANDLER: OnceLock<glib::LogHandlerId> = OnceLock::new();
    HANDLER.get_or_init(|| {
        glib::log_set_handler(
            Some("GStreamer"),
            glib::LogLevels::LEVEL_CRITICAL,
            false,
            false,
            |_, _, message| {
                COUNT.fetch_add(1, Ordering::SeqCst);
                eprintln!("GStreamer-CRITICAL: {message}");
            },
        )
    });
    COUNT.load(Ordering::SeqCst)
}

/// Server logs go to the test's captured output (shown when a test fails).
pub fn init_logs() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A livefront running inside the test process.
pub struct Server {
    pub app: Option<App>,
    pub api: Api,
    pub dir: tempfile::TempDir,
    pub demo_token: String,
    pub demo_stream: Value,
}

/// The system Python, where apt's python3-gi lives (not a pyenv/venv one).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        admin_token: Some(ADMIN_TOKEN.into()),
        ..Config::default()
    };
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.rtmp.addr = "127.0.0.1:0".parse().unwrap();
    config.srt.addr = "127.0.0.1:0".parse().unwrap();
    config.rtsp.addr = "127.0.0.1:0".parse().unwrap();
    // Transcoding is tested on small sources in tests/ladder.rs; elsewhere keep CI's 2 cores free.
    config.hls.ladder = "passthrough".into();
    // A dropped publisher keeps its stream live this long (30 s by default); tests/reconnect.rs
    // sets its own.
    config.ingest.reconnect_grace = Duration::from_secs(2);
    // Test cameras are on loopback.
    config.rtsp.allow_private_sources = true;
    // WHIP publishers in tests are on loopback too (ICE leaves loopback out by default).
    config.whip.ice_addresses = vec!["127.0.0.1".parse().unwrap()];
    if on_postgres() {
        config.database.url = Some(postgres_database_of(data_dir));
    }
    config
}

/// `STORE_BACKEND=postgres`: [`test_config`] puts a data dir's rows in a database of its own on
/// a PostgreSQL server shared by the test binary (`make test` runs the API test files a second
/// time so); a restart on the same data dir finds the same database.
pub fn on_postgres() -> bool {
    std::env::var("STORE_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The database of `data_dir` (its URL kept in the dir), made on first use.
fn postgres_database_of(data_dir: &Path) -> String {
    let file = data_dir.join("test-database-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url;
    }
    // The PostgreSQL client blocks on a runtime of its own: not on one of the test's threads.
    let url = std::thread::spawn(postgres_database)
        .join()
        .expect("no panic")
        .expect("a test PostgreSQL server (scripts/install-postgres.sh installs it)");
    std::fs::write(&file, &url).expect("data dir writable");
    url
}

/// A fresh database on the test binary's PostgreSQL server, started on first use and stopped by
/// its watchdog when the test process ends.
pub fn postgres_database() -> Result<String> {
    static SERVER: std::sync::Mutex<Option<postgres::Postgres>> = std::sync::Mutex::new(None);
    let mut server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if server.is_none() {
        *server = Some(postgres::Postgres::start()?);
    }
    server.as_ref().expect("started above").fresh_database()
}

impl Server {
    pub async fn start() -> Result<Server> {
        Server::start_with(|_| {}).await
    }

    /// Starts with the test config changed by `adjust` (it gets the data dir too).
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Result<Server> {
        Server::start_node(adjust, true).await
    }

    /// Another node on a store that a first one set up (`database.url` shared): no demo
    /// creator of its own (`demo_token` empty, `demo_stream` null).
    pub async fn start_joining(adjust: impl FnOnce(&mut Config)) -> Result<Server> {
        Server::start_node(adjust, false).await
    }

    async fn start_node(adjust: impl FnOnce(&mut Config), first_start: bool) -> Result<Server> {
        init_logs();
        let dir = tempfile::tempdir()?;
        let mut config = test_config(dir.path());
        adjust(&mut config);
        let app = App::start(config).await?;
        if !first_start {
            anyhow::ensure!(app.first_start.is_none(), "the store was empty");
            let api = Api::new(&format!("http://{}", app.http_addr));
            return Ok(Server {
                api,
                dir,
                demo_token: String::new(),
                demo_stream: Value::Null,
                app: Some(app),
            });
        }
        let first = app
            .first_start
            .clone()
            .context("first start on an empty store")?;
        let api = match &app.state.config.http.tls_cert {
            // A test's own certificate for 127.0.0.1 (tests/tls.rs).
            Some(cert) => {
                let pem = std::fs::read(cert)?;
                let client = reqwest::Client::builder()
                    .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
                    .build()?;
                Api::with_client(&format!("https://{}", app.http_addr), client)
            }
            None => Api::new(&format!("http://{}", app.http_addr)),
        };
        let demo_stream = api
            .stream(&first.demo_token, first.demo_stream.id.as_str())
            .await?;
        Ok(Server {
            api,
            dir,
            demo_token: first.demo_token,
            demo_stream,
            app: Some(app),
        })
    }

    pub fn rtmp_port(&self) -> u16 {
        self.app.as_ref().expect("running").rtmp_addr.port()
    }

    pub fn srt_port(&self) -> u16 {
        self.app.as_ref().expect("running").srt_addr.port()
    }

    /// The SRT publish URL of a stream object, pointed at 127.0.0.1.
    pub fn srt_publish_url(&self, stream: &Value) -> String {
        stream["ingest"]["srt"]
            .as_str()
            .expect("owner sees ingest")
            .replace("localhost", "127.0.0.1")
    }

    /// The publish URL of a stream object, pointed at 127.0.0.1.
    pub fn publish_url(&self, stream: &Value) -> String {
        stream["ingest"]["rtmp"]
            .as_str()
            .expect("owner sees ingest")
            .replace("localhost", "127.0.0.1")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }
}

/// What an ffmpeg publisher sends.
#[derive(Clone, Debug)]
pub struct Publish {
    pub video: bool,
    pub audio: bool,
    pub size: &'static str,
    pub fps: u32,
    /// Keyframe interval in frames.
    pub gop: u32,
    /// x264 B-frames between references (0: none).
    pub bframes: u32,
    /// AAC sample rate (Hz) and channels.
    pub sample_rate: u32,
    pub channels: u32,
    pub seconds: f64,
}

impl Publish {
    /// What OBS sends by default: x264 High with B-frames, 2 s keyframes, AAC 48 kHz stereo.
    pub fn obs_like(seconds: f64) -> Self {
        Publish {
            video: true,
            audio: true,
            size: "1280x720",
            fps: 30,
            gop: 60,
            bframes: 2,
            sample_rate: 48_000,
            channels: 2,
            seconds,
        }
    }

    pub fn small(seconds: f64) -> Self {
        Publish {
            size: "320x240",
            ..Publish::obs_like(seconds)
        }
    }

    /// ffmpeg arguments publishing FLV over RTMP to `url`.
    pub fn args(&self, url: &str) -> Vec<String> {
        self.args_to("flv", url)
    }

    /// ffmpeg arguments writing container `format` (`flv`, `mpegts`) to `url` (`-` = stdout).
    pub fn args_to(&self, format: &str, url: &str) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-hide_banner".into(),
            "-loglevel".into(),
            "error".into(),
            "-nostdin".into(),
            "-re".into(),
        ];
        if self.video {
            a.extend(["-f", "lavfi", "-i"].map(String::from));
            a.push(format!("testsrc2=size={}:rate={}", self.size, self.fps));
        }
        if self.audio {
            a.extend(["-f", "lavfi", "-i"].map(String::from));
            a.push(format!(
                "sine=frequency=440:sample_rate={}",
                self.sample_rate
            ));
        }
        a.extend(["-t".to_string(), format!("{}", self.seconds)]);
        if self.video {
            a.extend(
                [
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-profile:v",
                    "high",
                    "-pix_fmt",
                    "yuv420p",
                ]
                .map(String::from),
            );
            a.extend([
                "-bf".to_string(),
                self.bframes.to_string(),
                "-g".to_string(),
                self.gop.to_string(),
                "-keyint_min".to_string(),
                self.gop.to_string(),
            ]);
            // Keyframes exactly every `gop` frames, as OBS's fixed keyframe interval gives.
            a.extend(["-sc_threshold", "0"].map(String::from));
        }
        if self.audio {
            a.extend(["-c:a", "aac", "-b:a", "128k"].map(String::from));
            a.extend([
                "-ar".to_string(),
                self.sample_rate.to_string(),
                "-ac".to_string(),
                self.channels.to_string(),
            ]);
        }
        a.extend(["-f".to_string(), format.to_string(), url.to_string()]);
        a
    }

    pub fn spawn(&self, url: &str) -> Result<Child> {
        self.spawn_to("flv", url)
    }

    /// An ffmpeg publisher writing `format` to `url` (e.g. `mpegts` to an `srt://` URL).
    pub fn spawn_to(&self, format: &str, url: &str) -> Result<Child> {
        spawn_ffmpeg(self.args_to(format, url))
    }

    /// The same publish in HEVC: libx265 (Main profile, B-frames, the same GOP) for libx264.
    fn hevc_args_to(&self, format: &str, url: &str) -> Vec<String> {
        self.args_to(format, url)
            .into_iter()
            .map(|a| match a.as_str() {
                "libx264" => "libx265".to_string(),
                "high" => "main".to_string(),
                _ => a,
            })
            .chain(["-x265-params".into(), "log-level=error".into()])
            .collect()
    }

    /// An ffmpeg publisher of [`Publish::hevc_args_to`].
    pub fn spawn_hevc_to(&self, format: &str, url: &str) -> Result<Child> {
        spawn_ffmpeg(self.hevc_args_to(format, url))
    }
}

/// ffmpeg with `args`, its stderr kept for [`finish`], killed when dropped.
fn spawn_ffmpeg(args: Vec<String>) -> Result<Child> {
    Command::new("ffmpeg")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("ffmpeg is required (apt-get install ffmpeg)")
}

/// A Playwright story in Debian's headless Chromium (`node tests/web/SCRIPT ARGS…`, installed by
/// `make test`): its stdout lines (one JSON object per step) as they come, its stderr kept for
/// the failure message.
pub struct BrowserStory {
    child: Child,
    stderr: tokio::task::JoinHandle<String>,
    pub lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl BrowserStory {
    pub fn start(script: &str, args: &[String]) -> Result<Self> {
        let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
        anyhow::ensure!(
            web.join("node_modules/playwright-core").exists(),
            "tests/web/node_modules is missing: run `make test` (it installs chromium and Playwright)"
        );
        let mut child = Command::new("node")
            .arg(web.join(script))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("node is required (make test installs it)")?;
        let mut stderr = child.stderr.take().context("story stderr")?;
        let stderr = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let lines = BufReader::new(child.stdout.take().context("story stdout")?).lines();
        Ok(BrowserStory {
            child,
            stderr,
            lines,
        })
    }

    /// After the run that read [`BrowserStory::lines`] (`outcome`, bounded by `deadline`): waits up
    /// to 30 s for the script to exit (then kills it), and fails with the steps seen so far and
    /// the script's stderr when the run failed or took too long.
    pub async fn finish(
        mut self,
        outcome: Result<Result<()>, tokio::time::error::Elapsed>,
        deadline: Duration,
        steps: &[String],
    ) -> Result<()> {
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            self.child.start_kill()?;
            self.child.wait().await?;
        }
        let err = self.stderr.await.unwrap_or_default();
        match outcome {
            Err(_) => bail!("the story took longer than {deadline:?}; steps {steps:?}; {err}"),
            Ok(Err(e)) => bail!("{e}; steps {steps:?}; stderr: {err}"),
            Ok(Ok(())) => Ok(()),
        }
    }
}

/// Waits for a child with a deadline; returns its exit status and stderr.
pub async fn finish(
    child: Child,
    deadline: Duration,
) -> Result<(std::process::ExitStatus, String)> {
    let out = tokio::time::timeout(deadline, child.wait_with_output())
        .await
        .context("process did not finish in time")??;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs a command to completion with a deadline (killed on timeout).
pub async fn run(program: &str, args: &[&str], deadline: Duration) -> Result<std::process::Output> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("{program} is required"))?;
    Ok(tokio::time::timeout(deadline, child.wait_with_output())
        .await
        .with_context(|| format!("{program} timed out"))??)
}

/// ffprobe's view of a URL or file: codec names of the streams and the format duration.
/// Width and height of the first video stream of a file, by ffprobe (an MPEG-TS file lists the
/// stream again under its program: the first line counts).
pub async fn video_size(path: &Path) -> Result<(u32, u32)> {
    let target = path.to_str().context("a UTF-8 path")?;
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
            target,
        ],
        DEADLINE,
    )
    .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    let (w, h) = line
        .and_then(|l| l.split_once(','))
        .with_context(|| format!("ffprobe {target}: {text}"))?;
    Ok((w.parse()?, h.trim_end_matches(',').parse()?))
}

pub async fn probe(target: &str) -> Result<(Vec<String>, Option<f64>)> {
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "json",
            target,
        ],
        DEADLINE,
    )
    .await?;
    anyhow::ensure!(
        out.status.success(),
        "ffprobe {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let codecs = v["streams"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s["codec_name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok());
    Ok((codecs, duration))
}

/// Sum of EXTINF durations in a media playlist.
pub fn playlist_duration(text: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| l.split(',').next()?.parse::<f64>().ok())
        .sum()
}

/// The media playlist URL next to a master URL (keeps the query).
pub fn media_url(master: &str) -> String {
    master.replacen("master.m3u8", "source/index.m3u8", 1)
}

/// The built livefront binary as a child process (for SIGKILL / SIGTERM tests).
pub struct Process {
    pub child: Child,
    pub api: Api,
    pub rtmp_url: String,
    pub stdout: Vec<String>,
    /// Kills it if the test process ends without doing so.
    _watchdog: watchdog::Watchdog,
}

impl Process {
    pub async fn start(data_dir: &Path) -> Result<Process> {
        Process::start_with_env(data_dir, &[]).await
    }

    /// Starts with these `LIVEFRONT_…` settings too.
    pub async fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> Result<Process> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_livefront"))
            .arg("serve")
            .env("LIVEFRONT_DATA_DIR", data_dir)
            .env("LIVEFRONT_HTTP_ADDR", "127.0.0.1:0")
            .env("LIVEFRONT_RTMP_ADDR", "127.0.0.1:0")
            .env("LIVEFRONT_SRT_ADDR", "127.0.0.1:0")
            .env("LIVEFRONT_RTSP_ADDR", "127.0.0.1:0")
            .env("LIVEFRONT_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("LIVEFRONT_CONFIG", "/dev/null")
            .env("LIVEFRONT_LADDER", "passthrough")
            .env("LIVEFRONT_RTSP_ALLOW_PRIVATE", "true")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let _watchdog = watchdog::Watchdog::kill_on_exit(child.id().context("pid")?, "node")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut stdout = Vec::new();
        let (mut http, mut rtmp) = (None, None);
        let read = async {
            while let Some(line) = lines.next_line().await? {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["HTTP", "API", url, ..] => http = Some(url.to_string()),
                    ["RTMP", "ingest", url, ..] => rtmp = Some(url.to_string()),
                    _ => {}
                }
                stdout.push(line);
                if http.is_some() && rtmp.is_some() {
                    break;
                }
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(DEADLINE, read)
            .await
            .context("server banner")??;
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let http = http
            .context("HTTP line in banner")?
            .replace("localhost", "127.0.0.1");
        let rtmp_url = rtmp
            .context("RTMP line in banner")?
            .replace("localhost", "127.0.0.1");
        Ok(Process {
            child,
            api: Api::new(&http),
            rtmp_url,
            stdout,
            _watchdog,
        })
    }

    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.child.id().context("running")?;
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} {pid}");
        Ok(())
    }
}

/// Two cheap rungs under a 360p source.
pub const SMALL_LADDER: &str = r#"
name = "small"
source = true
priority = ["240p", "144p"]

[[rung]]
name = "240p"
height = 240
max_fps = 30
video_bitrate_kbps = 400
[rung.x264]
preset = "veryfast"
tune = "zerolatency"
profile = "main"

[[rung]]
name = "144p"
height = 144
max_fps = 15
video_bitrate_kbps = 150
[rung.x264]
preset = "veryfast"
tune = "zerolatency"
profile = "baseline"
"#;

/// The URI of the variant whose `EXT-X-STREAM-INF` line contains `codec`, resolved against `master`.
pub fn variant(master_url: &str, master: &str, codec: &str) -> Result<String> {
    let mut lines = master.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("#EXT-X-STREAM-INF") && line.contains(codec) {
            let uri = lines.next().context("uri after stream-inf")?;
            let base = &master_url[..master_url.rfind('/').context("base")? + 1];
            return Ok(format!("{base}{uri}"));
        }
    }
    anyhow::bail!("no {codec} variant in {master}")
}

/// Waits until the stream is live with a video track in its health; gives the health.
pub async fn live_health(server: &Server, token: &str, id: &str) -> Result<Value> {
    wait_for("the stream live with video health", DEADLINE, || async {
        let v = server.api.stream(token, id).await.ok()?;
        (v["state"] == "live" && v["health"]["video"]["codec"].is_string())
            .then(|| v["health"].clone())
    })
    .await
}

/// A stream's HLS master playlist URL as its owner sees it (signed while practice; the
/// low-latency one when that is on), pointed at 127.0.0.1.
pub fn owner_master_url(stream: &Value) -> String {
    stream["playback"]["hls"]
        .as_str()
        .expect("owner sees playback")
        .replace("localhost", "127.0.0.1")
}

pub async fn small_ladder_server() -> Result<Server> {
    let preset = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()?
        .into_temp_path()
        .keep()?;
    std::fs::write(&preset, SMALL_LADDER)?;
    Server::start_with(|c| c.hls.ladder = preset.to_string_lossy().into_owned()).await
}

/// A server whose simulcast destinations may be on loopback, retrying quickly.
pub async fn simulcast_server() -> Result<Server> {
    Server::start_with(|c| {
        c.simulcast.allow_private_destinations = true;
        c.simulcast.retry_initial = Duration::from_millis(500);
        c.simulcast.retry_max = Duration::from_secs(2);
    })
    .await
}

/// Makes the demo stream public, sending to one RTMP destination where nobody listens (its key
/// `key`); gives the path of the stream's destinations.
pub async fn public_with_one_destination(server: &Server, key: &str) -> Result<String> {
    let token = &server.demo_token;
    let id = server.demo_stream["id"].as_str().context("id")?;
    let closed = receivers::free_port(false)?;
    let d = server
        .api
        .ok(
            reqwest::Method::POST,
            "/api/v1/me/destinations",
            token,
            Some(json!({"name": "rtmp", "url": format!("rtmp://127.0.0.1:{closed}/live"), "key": key})),
        )
        .await?;
    let path = format!("/api/v1/streams/{id}/destinations");
    server
        .api
        .ok(
            reqwest::Method::PUT,
            &path,
            token,
            Some(json!({ "ids": [d["id"]] })),
        )
        .await?;
    server.api.set_mode(token, id, "public").await?;
    Ok(path)
}

/// Waits until the first destination at `path` reports an error saying all of `says`.
pub async fn destination_refused(server: &Server, path: &str, says: &[&str]) -> Result<()> {
    wait_for(
        "the destination refused with the reason",
        DEADLINE,
        || async {
            let (_, v) = server.api.get(path, Some(&server.demo_token)).await.ok()?;
            let error = v["destinations"][0]["error"].as_str()?.to_string();
            says.iter().all(|s| error.contains(s)).then_some(())
        },
    )
    .await
}

/// The value of the counter or gauge `name` (without labels) in `/metrics`.
pub async fn metric(api: &Api, name: &str) -> Result<u64> {
    let (_, text) = api.get_text("/metrics", None).await?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .with_context(|| format!("{name} in /metrics"))?;
    Ok(line.trim().parse()?)
}

/// Waits until the source rendition lists `n` segments, as MPEG-TS and as low-latency CMAF
/// (practice streams need the creator); returns the MPEG-TS playlist.
pub async fn source_segments(api: &Api, token: &str, id: &str, n: usize) -> Result<String> {
    let segments = |path: String| async move {
        let (status, text) = api.get_text(&path, Some(token)).await.ok()?;
        (status == 200 && text.matches("#EXTINF").count() >= n).then_some(text)
    };
    wait_for(&format!("{n} segments"), DEADLINE, || async {
        segments(format!("/hls/{id}/ll/source/index.m3u8")).await?;
        segments(format!("/hls/{id}/source/index.m3u8")).await
    })
    .await
}

/// Crashes a publisher (SIGKILL: no unpublish) and waits until the stream says it is waiting for
/// it to come back; returns the stream object then.
pub async fn crash(
    api: &Api,
    token: &str,
    id: &str,
    mut publisher: tokio::process::Child,
) -> Result<Value> {
    publisher.start_kill()?;
    publisher.wait().await?;
    wait_for("reconnecting in health", DEADLINE, || async {
        let v = api.stream(token, id).await.ok()?;
        (v["health"]["reconnecting"] == true).then_some(v)
    })
    .await
}

/// `X-Livefront-Signature` of a body signed with `secret` at unix time `t`, as DESIGN.md
/// describes it (written here again, independently of the server's code).
#[allow(dead_code)]
pub fn shop_signature(secret: &str, t: i64, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A self-signed certificate for 127.0.0.1 and localhost (openssl, as an operator would make one).
/// A certificate authority and a server certificate it signed for 127.0.0.1 and localhost, in
/// `dir`: (the authority's certificate, the server's certificate, the server's key), PEM.
pub async fn certificate_authority(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let extensions = dir.join("server.ext");
    std::fs::write(
        &extensions,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<String>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &["-days", "2", "-subj", "/CN=livefront test CA"],
        ]
        .concat()
        .iter()
        .map(|s| s.to_string())
        .chain(["-keyout", &path("ca.key"), "-out", &path("ca.pem")].map(String::from))
        .collect(),
        [&["req"][..], &ec, &["-subj", "/CN=localhost"]]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .chain(["-keyout", &path("key.pem"), "-out", &path("server.csr")].map(String::from))
            .collect(),
        [
            "x509",
            "-req",
            "-in",
            &path("server.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &extensions.to_string_lossy(),
            "-out",
            &path("cert.pem"),
        ]
        .map(String::from)
        .to_vec(),
    ];
    for args in &steps {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run("openssl", &args, DEADLINE).await?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    ))
}

pub async fn self_signed_certificate(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
        DEADLINE,
    )
    .await?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((cert, key))
}
