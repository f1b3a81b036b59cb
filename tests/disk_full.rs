//! A full disk under `data_dir`: a small tmpfs the test mounts (as root, as here and in CI; in a
//! user namespace through `unshare -rm` otherwise), a server writing there, real ffmpeg
//! publishers, and a filler file that takes the space and gives it back.
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// Set inside the user namespace this test re-runs itself in when it is not root.
const IN_NAMESPACE: &str = "LIVEFRONT_TEST_IN_USERNS";

/// A tmpfs of `size_mib` mounted on a fresh directory, unmounted when dropped (on panic too).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mib: u64) -> Result<Tmpfs> {
        let dir = tempfile::tempdir()?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .context("mount is required (apt-get install mount)")?;
        anyhow::ensure!(
            out.status.success(),
            "mount -t tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a file still open (a child killed a moment ago) must not keep the mount.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Runs the test `name` again inside a user and mount namespace when not root (mounting needs
/// it); returns true when the caller must go on itself.
fn in_a_namespace_that_may_mount(name: &str) -> Result<bool> {
    if unsafe { libc::geteuid() } == 0 {
        return Ok(true);
    }
    anyhow::ensure!(
        std::env::var_os(IN_NAMESPACE).is_none(),
        "not root even inside `unshare -rm`"
    );
    let status = std::process::Command::new("unshare")
        .args(["-rm", "--"])
        .arg(std::env::current_exe()?)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .status()
        .context(
            "unshare is required to mount a tmpfs when not root (apt-get install util-linux)",
        )?;
    anyhow::ensure!(status.success(), "{name} in a user namespace: {status}");
    Ok(false)
}

/// Server log lines at warn and above, kept for assertions (and echoed to the test output).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let buf = buf.clone();
            move || Captured(buf.clone())
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn,livefront=info")
            .with_ansi(false)
            .with_writer(writer)
            .try_init();
        buf
    })
}

struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        print!("{}", String::from_utf8_lossy(data));
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines_with(text: &str) -> usize {
    String::from_utf8_lossy(&logs().lock().unwrap())
        .lines()
        .filter(|l| l.contains(text))
        .count()
}

fn free_bytes(dir: &Path) -> Result<u64> {
    Ok(livefront::output::disk_space::free_bytes(dir)?)
}

/// Writes zeros to `file` until at most `leave` bytes are free under `dir` (0: until the disk
/// refuses); returns how much was written.
fn fill(dir: &Path, file: &Path, leave: u64) -> Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    let mut written = 0;
    let mut chunk = 1 << 20;
    loop {
        let free = free_bytes(dir)?;
        if leave > 0 && free <= leave {
            return Ok(written);
        }
        let n = if leave > 0 {
            chunk.min((free - leave) as usize)
        } else {
            chunk
        };
        match f.write_all(&vec![0u8; n]).and_then(|_| f.sync_data()) {
            Ok(()) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                if chunk <= 4096 {
                    return Ok(written);
                }
                chunk /= 16;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn create(api: &Api, token: &str, title: &str) -> Result<Value> {
    let (status, v) = api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(token),
            Some(json!({"title": title, "mode": "public"})),
        )
        .await?;
    anyhow::ensure!(status == 201, "{status} {v}");
    Ok(v)
}

fn warnings(stream: &Value) -> Vec<String> {
    stream["health"]["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.trim().parse().ok())
}

/// Every segment a media playlist on disk lists, probed by ffprobe; returns how many.
async fn listed_segments_play(dir: &Path) -> Result<usize> {
    let mut probed = 0;
    for name in ["event.m3u8", "index.m3u8"] {
        let path = dir.join(name);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{} does not parse: {e:?}", path.display()))?;
        for segment in parsed.segments {
            let file = dir.join(&segment.uri);
            let (codecs, duration) = probe(&file.to_string_lossy()).await?;
            anyhow::ensure!(
                codecs.iter().any(|c| c == "h264"),
                "{} has no video: {codecs:?}",
                file.display()
            );
            let d = duration.context("segment duration")?;
            anyhow::ensure!(
                (d - segment.duration as f64).abs() < 0.5,
                "{} lasts {d} s, listed as {}",
                file.display(),
                segment.duration
            );
            probed += 1;
        }
    }
    Ok(probed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_the_api_answers_and_nothing_written_is_corrupted() -> Result<()> {
    if !in_a_namespace_that_may_mount(
        "a_full_disk_is_reported_the_api_answers_and_nothing_written_is_corrupted",
    )? {
        return Ok(());
    }
    logs();
    let tmpfs = Tmpfs::mount(48)?;
    let data: PathBuf = tmpfs.path().join("data");
    let mut server = Server::start_with(|c| {
        c.data_dir = data.clone();
        c.disk.low_free_mib = 16;
        c.disk.check_interval = Duration::from_millis(200);
    })
    .await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let a = create(&api, &token, "A").await?;
    let b = create(&api, &token, "B").await?;
    let (a_id, b_id) = (
        a["id"].as_str().context("id")?,
        b["id"].as_str().context("id")?,
    );
    let _pub_a = Publish::small(600.0).spawn(&server.publish_url(&a))?;
    let _pub_b = Publish::small(600.0).spawn(&server.publish_url(&b))?;
    for id in [a_id, b_id] {
        api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 2)
            .await?;
    }
    let (_, m) = api.get_text("/metrics", None).await?;
    assert_eq!(metric(&m, "livefront_data_disk_low"), Some(0.0), "{m}");
    assert!(metric(&m, "livefront_data_free_bytes").is_some_and(|f| f > 16.0 * 1048576.0));

    // Below the threshold: a warning in health and metrics, logged once.
    let filler = tmpfs.path().join("filler");
    fill(tmpfs.path(), &filler, 12 << 20)?;
    let v = wait_for("a low-space warning in health", DEADLINE, || async {
        let v = api.stream(&token, a_id).await.ok()?;
        warnings(&v)
            .iter()
            .any(|w| w.starts_with("disk space low"))
            .then_some(v)
    })
    .await?;
    let (_, m) = api.get_text("/metrics", None).await?;
    assert_eq!(metric(&m, "livefront_data_disk_low"), Some(1.0), "{v}\n{m}");
    assert_eq!(log_lines_with("disk space low under data_dir"), 1);

    // Full: every write under data_dir fails.
    let full_filler = tmpfs.path().join("filler-2");
    fill(tmpfs.path(), &full_filler, 0)?;
    let m = wait_for("the full disk in metrics", DEADLINE, || async {
        let (_, m) = api.get_text("/metrics", None).await.ok()?;
        (metric(&m, "livefront_data_disk_full") == Some(1.0)).then_some(m)
    })
    .await?;
    assert_eq!(metric(&m, "livefront_data_disk_low"), Some(1.0));
    let (status, health) = api.get_text("/healthz", None).await?;
    assert_eq!(status, 200, "the server still answers: {health}");
    assert!(health.contains("disk full:"), "{health}");
    // A segment that cannot be written ends its stream (the same session cannot go on: its
    // segment writer failed), with the disk named as the cause; the publishers are let go.
    for id in [a_id, b_id] {
        wait_for("the stream's publish over", DEADLINE, || async {
            let v = api.stream(&token, id).await.ok()?;
            v["health"].is_null().then_some(())
        })
        .await?;
    }
    wait_for("both failures in the log", DEADLINE, || async {
        (log_lines_with("pipeline error; ending the stream") >= 2).then_some(())
    })
    .await?;
    assert!(
        log_lines_with("reason=disk full under data_dir: /GstPipeline") >= 2,
        "the cause is named"
    );
    assert_eq!(
        log_lines_with("disk full under data_dir: segments and recordings cannot be written"),
        1,
        "logged once"
    );
    // The API keeps answering, for both streams too.
    for path in ["/api/v1/live", "/api/v1/home", "/api/v1/categories"] {
        assert_eq!(api.status(path, None).await?, 200, "{path}");
    }
    for id in [a_id, b_id] {
        assert_eq!(
            api.status(&format!("/api/v1/streams/{id}"), None).await?,
            200
        );
    }

    // Space comes back: without a restart, the ends are stored, the playlists closed and the
    // recordings finalised from what was written.
    std::fs::remove_file(&full_filler)?;
    std::fs::remove_file(&filler)?;
    wait_for("disk space back in metrics", DEADLINE, || async {
        let (_, m) = api.get_text("/metrics", None).await.ok()?;
        (metric(&m, "livefront_data_disk_low") == Some(0.0)).then_some(())
    })
    .await?;
    let (_, health) = api.get_text("/healthz", None).await?;
    assert_eq!(health, "ok\n");
    for id in [a_id, b_id] {
        let v = wait_for(
            "the stream ended, its recording ready",
            DEADLINE,
            || async {
                let v = api.stream(&token, id).await.ok()?;
                (v["state"] == "ended" && v["recording"]["state"] == "ready").then_some(v)
            },
        )
        .await?;
        let dir = data.join("streams").join(id);
        let (codecs, duration) = probe(&dir.join("recording.mp4").to_string_lossy()).await?;
        assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
        assert!(duration.context("duration")? > 2.0, "{v}");
        assert!(!dir.join("recording.fmp4").exists());
        // Nothing already written is corrupted: the playlists parse and every listed segment plays.
        let source = dir.join("hls").join("source");
        let n = listed_segments_play(&source).await?;
        assert!(n >= 2, "{id}: {n} segments listed");
        let event = std::fs::read_to_string(source.join("event.m3u8"))?;
        assert!(event.contains("#EXT-X-ENDLIST"), "closed: {event}");
    }
    // That session is over: its key is refused. A new stream publishes as before.
    let (status, _) = finish(
        Publish::small(2.0).spawn(&server.publish_url(&a))?,
        DEADLINE,
    )
    .await?;
    assert!(!status.success(), "an ended stream's key is refused");
    let c = create(&api, &token, "C").await?;
    let c_id = c["id"].as_str().context("id")?;
    let _pub_c = Publish::small(600.0).spawn(&server.publish_url(&c))?;
    api.playlist_with_segments(&format!("/hls/{c_id}/source/index.m3u8"), 2)
        .await?;
    server.stop().await;
    drop(tmpfs);
    Ok(())
}

/// Runs `sql` on the server's SQLite file.
fn write_db(data_dir: &Path, sql: &str) -> Result<()> {
    let db = rusqlite::Connection::open(data_dir.join("livefront.db"))?;
    db.busy_timeout(Duration::from_secs(10))?;
    db.execute_batch(sql)?;
    Ok(())
}

/// A full disk leaves a stream's recording unfinished (the remux into the MP4 cannot write) and
/// its end unstored (the store cannot write either: the stream still reads `live`), so the same
/// key is let in again once there is space. That later session used to write its recording over
/// the unfinished one; it is kept and finalised beside the new one instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_session_does_not_overwrite_an_unfinished_recording() -> Result<()> {
    logs();
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = create(&api, &token, "rec").await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    let dir = server.data_dir().join("streams").join(&id);
    // Finalising cannot write its output, as on a full disk: a directory where the MP4 goes.
    std::fs::create_dir_all(dir.join("recording.mp4.part"))?;
    let (status, err) = finish(
        Publish::small(4.0).spawn(&server.publish_url(&stream))?,
        DEADLINE,
    )
    .await?;
    assert!(status.success(), "{err}");
    let v = wait_for("the recording failed", DEADLINE, || async {
        let v = api.stream(&token, &id).await.ok()?;
        (v["state"] == "ended" && v["recording"]["state"] == "failed").then_some(v)
    })
    .await?;
    let unfinished = std::fs::read(dir.join("recording.fmp4"))
        .with_context(|| format!("the unfinished recording is kept: {v}"))?;
    // The end the full store refused; space is back.
    write_db(
        &server.data_dir(),
        &format!("UPDATE streams SET state = 'live' WHERE id = '{id}'"),
    )?;
    std::fs::remove_dir(dir.join("recording.mp4.part"))?;

    let (status, err) = finish(
        Publish::small(3.0).spawn(&server.publish_url(&stream))?,
        DEADLINE,
    )
    .await?;
    assert!(status.success(), "the later session is let in: {err}");
    wait_for("the later session's recording ready", DEADLINE, || async {
        let v = api.stream(&token, &id).await.ok()?;
        (v["state"] == "ended" && v["recording"]["state"] == "ready").then_some(())
    })
    .await?;
    // The earlier session's media is whole, finalised beside the new recording.
    let part = dir.join("recording-part1.mp4");
    wait_for("the earlier recording finalised", DEADLINE, || async {
        (part.exists() && !dir.join("recording-part1.fmp4").exists()).then_some(())
    })
    .await?;
    let (codecs, duration) = probe(&part.to_string_lossy()).await?;
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    let duration = duration.context("duration")?;
    assert!(duration > 3.0, "the earlier session's 4 s: {duration}");
    let (_, new) = probe(&dir.join("recording.mp4").to_string_lossy()).await?;
    assert!(new.context("duration")? > 2.0);
    assert!(unfinished.len() > 1000);
    server.stop().await;
    Ok(())
}

/// A recording whose finalising waits for disk space when the server stops is finalised after
/// the restart once there is room (it used to stay failed for good). The streams' media is on the
/// small tmpfs and the store is not, so the store can say why the recording is not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_waiting_for_space_is_finalised_after_a_restart() -> Result<()> {
    if !in_a_namespace_that_may_mount("a_recording_waiting_for_space_is_finalised_after_a_restart")?
    {
        return Ok(());
    }
    logs();
    let tmpfs = Tmpfs::mount(32)?;
    let data = tempfile::tempdir()?;
    std::fs::create_dir_all(tmpfs.path().join("streams"))?;
    std::os::unix::fs::symlink(tmpfs.path().join("streams"), data.path().join("streams"))?;
    let mut server = Server::start_with(|c| c.data_dir = data.path().to_path_buf()).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = create(&api, &token, "full").await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    let _publisher = Publish::small(600.0).spawn(&server.publish_url(&stream))?;
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 2)
        .await?;
    // The recording holds a whole fragment before the disk fills (on a loaded machine its first
    // fragment can still be in the muxer when the playlist has two segments; with none, there is
    // nothing to finalise, which is another case): a second `moof` begins after the first `mdat`.
    let fragmented = data.path().join("streams").join(&id).join("recording.fmp4");
    wait_for("a whole fragment recorded", DEADLINE, || async {
        let bytes = std::fs::read(&fragmented).ok()?;
        (bytes.windows(4).filter(|w| w == b"moof").count() >= 2).then_some(())
    })
    .await?;
    let filler = tmpfs.path().join("filler");
    fill(tmpfs.path(), &filler, 0)?;
    let error = wait_for("the recording waiting for space", DEADLINE, || async {
        let v = api.stream(&token, &id).await.ok()?;
        let error = v["recording"]["error"].as_str()?.to_string();
        (v["recording"]["state"] == "failed"
            && error.starts_with("finalising waits for disk space"))
        .then_some(error)
    })
    .await?;
    server.stop().await;
    let dir = data.path().join("streams").join(&id);
    assert!(dir.join("recording.fmp4").exists(), "kept: {error}");
    assert!(!dir.join("recording.mp4").exists());

    std::fs::remove_file(&filler)?;
    let scratch = tempfile::tempdir()?;
    let mut config = test_config(scratch.path());
    config.data_dir = data.path().to_path_buf();
    let app = livefront::app::App::start(config).await?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    let v = wait_for(
        "the recording ready after the restart",
        DEADLINE,
        || async {
            let v = api.stream(&token, &id).await.ok()?;
            (v["recording"]["state"] == "ready").then_some(v)
        },
    )
    .await?;
    assert_eq!(v["state"], "ended", "{v}");
    assert!(v["recording"]["error"].is_null(), "{v}");
    let (codecs, duration) = probe(&dir.join("recording.mp4").to_string_lossy()).await?;
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    assert!(duration.context("duration")? > 2.0);
    assert!(!dir.join("recording.fmp4").exists());
    app.stop().await;
    drop(tmpfs);
    Ok(())
}
