//! RTMP ingest against real publishers: ffmpeg and gst-launch-1.0 processes (killed on drop),
//! the server in-process on 127.0.0.1:0, and a test `Publishers` that records what arrives.
use std::future::Future;
use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use livefront::ingest::rtmp::{RtmpConfig, RtmpServer};
use livefront::ingest::{EndReason, Error, MediaFrame, MediaSink, Proto, Publishers};
use livefront::store::stream_key::redact;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const GOOD_KEY: &str = "good";
/// Generous: only reached when something is broken.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Authorized(String),
    Rejected(String),
    Frame(MediaFrame),
    Finished(EndReason),
}

type Events = Arc<Mutex<Vec<Event>>>;

fn record(events: &Events, event: Event) {
    events.lock().expect("events lock").push(event);
}

/// Accepts [`GOOD_KEY`], refuses everything else with `BadStreamKey`.
struct TestPublishers {
    events: Events,
    /// Cancelling it makes every sink's `ended()` resolve (an API "end stream").
    end: CancellationToken,
    /// Sinks refuse frames after this many.
    fail_after: Option<usize>,
}

impl Publishers for TestPublishers {
    type Sink = TestSink;

    fn authorize(
        &self,
        key: &str,
        proto: Proto,
    ) -> impl Future<Output = Result<TestSink, Error>> + Send {
        assert_eq!(proto, Proto::Rtmp);
        let result = if key == GOOD_KEY {
            record(&self.events, Event::Authorized(key.to_owned()));
            Ok(TestSink {
                events: Arc::clone(&self.events),
                end: self.end.clone(),
                fail_after: self.fail_after,
                pushed: 0,
            })
        } else {
            record(&self.events, Event::Rejected(key.to_owned()));
            Err(Error::BadStreamKey(redact(key)))
        };
        std::future::ready(result)
    }

    /// Only RTSP pulls come this way; this server never pulls.
    fn authorize_pull(
        &self,
        id: &livefront::store::StreamId,
    ) -> impl Future<Output = Result<TestSink, Error>> + Send {
        std::future::ready(Err(Error::Ended(id.to_string())))
    }
}

struct TestSink {
    events: Events,
    end: CancellationToken,
    fail_after: Option<usize>,
    pushed: usize,
}

impl MediaSink for TestSink {
    fn push(&mut self, frame: MediaFrame) -> Result<(), Error> {
        if self.fail_after.is_some_and(|n| self.pushed >= n) {
            return Err(Error::Pipeline("test sink is full".into()));
        }
        self.pushed += 1;
        record(&self.events, Event::Frame(frame));
        Ok(())
    }

    fn finish(self, reason: EndReason) {
        record(&self.events, Event::Finished(reason));
    }

    fn ended(&self) -> impl Future<Output = ()> + Send + 'static {
        self.end.clone().cancelled_owned()
    }
}

/// A running server; shuts it down when dropped.
struct Harness {
    addr: SocketAddr,
    events: Events,
    end: CancellationToken,
    shutdown: CancellationToken,
    server: Option<JoinHandle<()>>,
}

impl Harness {
    async fn start(config: RtmpConfig, fail_after: Option<usize>) -> Result<Self> {
        init_tracing();
        let server = RtmpServer::bind("127.0.0.1:0".parse()?)
            .await?
            .with_config(config);
        let addr = server.local_addr();
        let events = Events::default();
        let end = CancellationToken::new();
        let publishers = Arc::new(TestPublishers {
            events: Arc::clone(&events),
            end: end.clone(),
            fail_after,
        });
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(server.run(publishers, shutdown.clone()));
        Ok(Self {
            addr,
            events,
            end,
            shutdown,
            server: Some(server),
        })
    }

    fn url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.addr)
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().expect("events lock").clone()
    }

    fn frames(&self) -> Vec<MediaFrame> {
        frames(&self.events())
    }

    fn finished(&self) -> Option<EndReason> {
        self.events().into_iter().find_map(|e| match e {
            Event::Finished(reason) => Some(reason),
            _ => None,
        })
    }

    /// Polls until `cond` holds on the recorded events.
    async fn wait_until(&self, what: &str, cond: impl Fn(&[Event]) -> bool) -> Result<()> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !cond(&self.events()) {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "timed out waiting for {what}; events: {}",
                    summary(&self.events())
                );
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "livefront=debug".into()),
        )
        .try_init();
}

fn frames(events: &[Event]) -> Vec<MediaFrame> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

fn summary(events: &[Event]) -> String {
    let frames = frames(events);
    let others: Vec<_> = events
        .iter()
        .filter(|e| !matches!(e, Event::Frame(_)))
        .collect();
    format!("{} frames, others: {others:?}", frames.len())
}

fn test_config() -> RtmpConfig {
    RtmpConfig {
        setup_timeout: Duration::from_secs(1),
        ..RtmpConfig::default()
    }
}

fn ffmpeg_publish(url: &str, seconds: u32) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "60",
        ])
        .args(["-c:a", "aac", "-ar", "48000", "-ac", "2"])
        .args(["-f", "flv", url]);
    cmd
}

/// Starts a publisher process; a missing tool fails the test naming its Debian package.
fn spawn(mut cmd: Command, package: &str) -> Result<Child> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {program}: install the Debian package {package}"))
}

/// Waits for a publisher to exit (killing it if it outlives the deadline).
async fn wait_exit(child: Child) -> Result<Output> {
    tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .context("publisher did not exit before the deadline")?
        .context("waiting for publisher")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn video_frames(frames: &[MediaFrame]) -> Vec<(u64, i32, bool)> {
    frames
        .iter()
        .filter_map(|f| match f {
            MediaFrame::Video {
                dts_ms,
                cts_ms,
                keyframe,
                ..
            } => Some((*dts_ms, *cts_ms, *keyframe)),
            _ => None,
        })
        .collect()
}

fn audio_dts(frames: &[MediaFrame]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| match f {
            MediaFrame::Audio { dts_ms, .. } => Some(*dts_ms),
            _ => None,
        })
        .collect()
}

/// Checks what every good publish must look like: configs first, keyframe first, ordered DTS.
fn assert_well_formed(frames: &[MediaFrame]) -> Result<()> {
    let position = |pred: &dyn Fn(&MediaFrame) -> bool| frames.iter().position(pred);
    let video_config =
        position(&|f| matches!(f, MediaFrame::VideoConfig { .. })).context("no VideoConfig")?;
    let audio_config =
        position(&|f| matches!(f, MediaFrame::AudioConfig { .. })).context("no AudioConfig")?;
    let first_video =
        position(&|f| matches!(f, MediaFrame::Video { .. })).context("no Video frame")?;
    let first_audio =
        position(&|f| matches!(f, MediaFrame::Audio { .. })).context("no Audio frame")?;
    ensure!(
        video_config < first_video && video_config < first_audio,
        "VideoConfig at {video_config} comes after media (video {first_video}, audio {first_audio})"
    );
    ensure!(
        audio_config < first_video && audio_config < first_audio,
        "AudioConfig at {audio_config} comes after media (video {first_video}, audio {first_audio})"
    );
    if let Some(MediaFrame::VideoConfig { codec, record }) = frames.get(video_config) {
        ensure!(*codec == livefront::ingest::VideoCodec::H264);
        ensure!(record.first() == Some(&1), "avcC must start with version 1");
    }
    if let Some(MediaFrame::AudioConfig { asc }) = frames.get(audio_config) {
        ensure!(asc.len() >= 2, "AudioSpecificConfig is at least 2 bytes");
    }

    let video = video_frames(frames);
    ensure!(video[0].2, "first video frame is not a keyframe");
    ensure!(
        video.windows(2).all(|w| w[0].0 <= w[1].0),
        "video dts decrease: {:?}",
        video.iter().map(|v| v.0).collect::<Vec<_>>()
    );
    let audio = audio_dts(frames);
    ensure!(
        audio.windows(2).all(|w| w[0] <= w[1]),
        "audio dts decrease: {audio:?}"
    );
    for f in frames {
        match f {
            MediaFrame::Video { data, .. } | MediaFrame::Audio { data, .. } => {
                ensure!(!data.is_empty(), "empty media frame")
            }
            _ => {}
        }
    }
    Ok(())
}

fn assert_about(what: &str, count: usize, expected: usize, slack: usize) -> Result<()> {
    ensure!(
        count.abs_diff(expected) <= slack,
        "{what}: got {count}, expected {expected} ± {slack}"
    );
    Ok(())
}

/// Reads until the server closes the connection (EOF or reset).
async fn closed_by_server(stream: &mut TcpStream) -> Result<()> {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .context("server kept the connection open")
}

#[tokio::test]
async fn rtmp_publish_from_ffmpeg_delivers_ordered_frames() -> Result<()> {
    let h = Harness::start(RtmpConfig::default(), None).await?;
    let child = spawn(ffmpeg_publish(&h.url(GOOD_KEY), 3), "ffmpeg")?;
    let output = wait_exit(child).await?;
    ensure!(
        output.status.success(),
        "ffmpeg failed: {}",
        stderr(&output)
    );
    h.wait_until("finish", |e| {
        e.iter().any(|e| matches!(e, Event::Finished(_)))
    })
    .await?;

    let events = h.events();
    ensure!(
        events.first() == Some(&Event::Authorized(GOOD_KEY.into())),
        "the key is checked before anything else: {}",
        summary(&events)
    );
    ensure!(
        h.finished() == Some(EndReason::PublisherStopped),
        "{}",
        summary(&events)
    );
    ensure!(
        matches!(events.last(), Some(Event::Finished(_))),
        "nothing arrives after finish"
    );

    let frames = h.frames();
    assert_well_formed(&frames)?;
    let video = video_frames(&frames);
    assert_about("video frames", video.len(), 90, 5)?;
    ensure!(
        video.iter().any(|v| v.1 != 0),
        "B-frames should give some non-zero cts"
    );
    ensure!(video.iter().all(|v| v.1 >= 0), "ffmpeg writes pts >= dts");
    // 3 s of 48 kHz AAC is ~141 frames of 1024 samples.
    assert_about("audio frames", audio_dts(&frames).len(), 141, 10)?;
    let metadata = frames.iter().find_map(|f| match f {
        MediaFrame::Metadata(m) => Some(m.clone()),
        _ => None,
    });
    let metadata = metadata.context("ffmpeg sends onMetaData")?;
    ensure!(metadata.has_video == Some(true) && metadata.has_audio == Some(true));
    ensure!(metadata.width == Some(320) && metadata.height == Some(240));
    Ok(())
}

#[tokio::test]
async fn rtmp_publish_with_wrong_key_is_rejected() -> Result<()> {
    let h = Harness::start(RtmpConfig::default(), None).await?;
    let child = spawn(ffmpeg_publish(&h.url("bad"), 3), "ffmpeg")?;
    let output = wait_exit(child).await?;
    ensure!(
        !output.status.success(),
        "ffmpeg should fail on a refused key"
    );
    let events = h.events();
    ensure!(
        events == vec![Event::Rejected("bad".into())],
        "only the refusal is recorded: {}",
        summary(&events)
    );
    Ok(())
}

#[tokio::test]
async fn rtmp_stream_key_query_suffix_is_ignored() -> Result<()> {
    let h = Harness::start(RtmpConfig::default(), None).await?;
    let url = format!("{}?token=abc", h.url(GOOD_KEY));
    let child = spawn(ffmpeg_publish(&url, 1), "ffmpeg")?;
    let output = wait_exit(child).await?;
    ensure!(
        output.status.success(),
        "ffmpeg failed: {}",
        stderr(&output)
    );
    h.wait_until("finish", |e| {
        e.iter().any(|e| matches!(e, Event::Finished(_)))
    })
    .await?;
    ensure!(h.events().first() == Some(&Event::Authorized(GOOD_KEY.into())));
    ensure!(!h.frames().is_empty());
    Ok(())
}

#[tokio::test]
async fn rtmp_garbage_client_is_disconnected() -> Result<()> {
    let h = Harness::start(test_config(), None).await?;
    let mut garbage = vec![0u8; 4096];
    rand::rng().fill(&mut garbage[..]);
    let mut stream = TcpStream::connect(h.addr).await?;
    // The server may hang up before it read everything; that is fine.
    let _ = stream.write_all(&garbage).await;
    closed_by_server(&mut stream).await?;
    ensure!(h.events().is_empty(), "{}", summary(&h.events()));
    Ok(())
}

/// Completes a client handshake on `stream`.
async fn client_handshake(stream: &mut TcpStream) -> Result<()> {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    let mut handshake = Handshake::new(PeerType::Client);
    stream
        .write_all(&handshake.generate_outbound_p0_and_p1()?)
        .await?;
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        ensure!(n > 0, "server closed during the handshake");
        match handshake.process_bytes(&buf[..n])? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                stream.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                stream.write_all(&response_bytes).await?;
                return Ok(());
            }
        }
    }
}

#[tokio::test]
async fn rtmp_malformed_data_message_only_drops_that_connection() -> Result<()> {
    use rml_rtmp::chunk_io::ChunkSerializer;
    use rml_rtmp::messages::RtmpMessage;
    use rml_rtmp::rml_amf0::Amf0Value;
    use rml_rtmp::time::RtmpTimestamp;

    let h = Harness::start(RtmpConfig::default(), None).await?;
    let mut evil = TcpStream::connect(h.addr).await?;
    client_handshake(&mut evil).await?;
    // `@setDataFrame` without arguments: rml_rtmp 0.8 indexes an empty vector on it.
    let message = RtmpMessage::Amf0Data {
        values: vec![Amf0Value::Utf8String("@setDataFrame".into())],
    };
    let payload = message.into_message_payload(RtmpTimestamp::new(0), 0)?;
    let packet = ChunkSerializer::new().serialize(&payload, true, false)?;
    evil.write_all(&packet.bytes).await?;
    closed_by_server(&mut evil).await?;

    // The server still serves publishers.
    let child = spawn(ffmpeg_publish(&h.url(GOOD_KEY), 1), "ffmpeg")?;
    let output = wait_exit(child).await?;
    ensure!(
        output.status.success(),
        "ffmpeg failed: {}",
        stderr(&output)
    );
    h.wait_until("finish", |e| {
        e.iter().any(|e| matches!(e, Event::Finished(_)))
    })
    .await?;
    ensure!(h.finished() == Some(EndReason::PublisherStopped));
    ensure!(!h.frames().is_empty());
    Ok(())
}

#[tokio::test]
async fn rtmp_client_flooding_before_publish_is_dropped() -> Result<()> {
    use rml_rtmp::chunk_io::ChunkSerializer;
    use rml_rtmp::messages::RtmpMessage;
    use rml_rtmp::rml_amf0::Amf0Value;
    use rml_rtmp::time::RtmpTimestamp;

    let h = Harness::start(RtmpConfig::default(), None).await?;
    let mut flood = TcpStream::connect(h.addr).await?;
    client_handshake(&mut flood).await?;
    // Well-formed but pointless commands, never a publish.
    let message = RtmpMessage::Amf0Command {
        command_name: "noise".into(),
        transaction_id: 0.0,
        command_object: Amf0Value::Null,
        additional_arguments: vec![Amf0Value::Utf8String("x".repeat(100))],
    };
    let payload = message.into_message_payload(RtmpTimestamp::new(0), 0)?;
    let mut serializer = ChunkSerializer::new();
    let sent = tokio::time::timeout(DEADLINE, async {
        // Up to 16 MiB; the server gives up long before.
        for _ in 0..(16 << 20) / 128 {
            let packet = serializer.serialize(&payload, false, false)?;
            if flood.write_all(&packet.bytes).await.is_err() {
                return Ok::<bool, anyhow::Error>(false);
            }
        }
        Ok(true)
    })
    .await
    .context("writing the flood stalled")??;
    if sent {
        closed_by_server(&mut flood).await?;
    }
    ensure!(h.events().is_empty(), "{}", summary(&h.events()));
    Ok(())
}

#[tokio::test]
async fn rtmp_silent_client_is_dropped_while_publisher_streams() -> Result<()> {
    let h = Harness::start(test_config(), None).await?;
    let mut silent = TcpStream::connect(h.addr).await?;
    let child = spawn(ffmpeg_publish(&h.url(GOOD_KEY), 3), "ffmpeg")?;

    closed_by_server(&mut silent).await?;
    let output = wait_exit(child).await?;
    ensure!(
        output.status.success(),
        "ffmpeg failed: {}",
        stderr(&output)
    );
    h.wait_until("finish", |e| {
        e.iter().any(|e| matches!(e, Event::Finished(_)))
    })
    .await?;
    ensure!(h.finished() == Some(EndReason::PublisherStopped));
    let frames = h.frames();
    assert_well_formed(&frames)?;
    assert_about("video frames", video_frames(&frames).len(), 90, 5)?;
    Ok(())
}

/// Opens a socket to `addr` from `from` and sends nothing.
async fn idle_socket(from: &str, addr: SocketAddr) -> Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{from}:0").parse()?)?;
    Ok(socket.connect(addr).await?)
}

#[tokio::test]
async fn rtmp_publisher_gets_in_while_idle_sockets_hold_the_server() -> Result<()> {
    // The server's own limits: 256 connections, a few pending ones per address.
    let h = Harness::start(RtmpConfig::default(), None).await?;
    let mut idle = Vec::new();
    for i in 0..300 {
        // From another address, and from the publisher's own.
        let from = if i % 2 == 0 { "127.0.0.2" } else { "127.0.0.1" };
        idle.push(idle_socket(from, h.addr).await?);
    }
    let child = spawn(ffmpeg_publish(&h.url(GOOD_KEY), 2), "ffmpeg")?;
    let output = wait_exit(child).await?;
    ensure!(
        output.status.success(),
        "ffmpeg failed: {}",
        stderr(&output)
    );
    h.wait_until("finish", |e| {
        e.iter().any(|e| matches!(e, Event::Finished(_)))
    })
    .await?;
    ensure!(h.finished() == Some(EndReason::PublisherStopped));
    assert_about("video frames", video_frames(&h.frames()).len(), 60, 5)?;
    // Every idle socket is closed by the server in the end (made room, or out of setup time).
    for socket in &mut idle {
        closed_by_server(socket).await?;
    }
    Ok(())
}

#[tokio::test]
async fn rtmp_publish_from_gstreamer_delivers_frames() -> Result<()> {
    for (element, package) in [
        ("videotestsrc", "gstreamer1.0-plugins-base"),
        ("audiotestsrc", "gstreamer1.0-plugins-base"),
        ("audioconvert", "gstreamer1.0-plugins-base"),
        ("x264enc", "gstreamer1.0-plugins-ugly"),
        ("h264parse", "gstreamer1.0-plugins-bad"),
        ("avenc_aac", "gstreamer1.0-libav"),
        ("aacparse", "gstreamer1.0-plugins-good"),
        ("flvmux", "gstreamer1.0-plugins-good"),
        ("rtmp2sink", "gstreamer1.0-plugins-bad"),
    ] {
        let status = Command::new("gst-inspect-1.0")
            .args(["--exists", element])
            .status()
            .await
            .context("cannot run gst-inspect-1.0: install the Debian package gstreamer1.0-tools")?;
        ensure!(
            status.success(),
            "GStreamer element {element} missing: install the Debian package {package}"
        );
    }

    let h = Harness::start(RtmpConfig::default(), None).await?;
    let mut cmd = Command::new("gst-launch-1.0");
    let pipeline = format!(
        "videotestsrc num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency key-int-max=30 ! h264parse \
         ! flvmux name=m streamable=true ! rtmp2sink location={url} \
         audiotestsrc num-buffers=140 ! audio/x-raw,rate=48000,channels=2 ! audioconvert \
         ! avenc_aac ! aacparse ! m.",
        url = h.url(GOOD_KEY)
    );
    cmd.arg("-q").args(pipeline.split_whitespace());
    let child = spawn(cmd, "gstreamer1.0-tools")?;
    let output = wait_exit(child).await?;
    ensure!(
        output.status.success(),
        "gst-launch-1.0 failed: {}",
        stderr(&output)
    );
    h.wait_until("finish", |e| {
        e.iter().any(|e| matches!(e, Event::Finished(_)))
    })
    .await?;
    ensure!(
        h.finished() == Some(EndReason::PublisherStopped),
        "{}",
        summary(&h.events())
    );
    let frames = h.frames();
    assert_well_formed(&frames)?;
    assert_about("video frames", video_frames(&frames).len(), 90, 5)?;
    ensure!(audio_dts(&frames).len() > 100, "{}", summary(&h.events()));
    Ok(())
}

/// Starts a long ffmpeg publish and waits until media flows.
async fn long_publish(h: &Harness) -> Result<Child> {
    let child = spawn(ffmpeg_publish(&h.url(GOOD_KEY), 600), "ffmpeg")?;
    h.wait_until("30 video frames", |e| video_frames(&frames(e)).len() >= 30)
        .await?;
    Ok(child)
}

#[tokio::test]
async fn rtmp_server_end_disconnects_publisher() -> Result<()> {
    let h = Harness::start(RtmpConfig::default(), None).await?;
    let child = long_publish(&h).await?;
    h.end.cancel();
    h.wait_until("finish", |e| {
        e.iter().any(|e| matches!(e, Event::Finished(_)))
    })
    .await?;
    ensure!(h.finished() == Some(EndReason::ServerEnded));
    let output = wait_exit(child).await?;
    ensure!(
        !output.status.success(),
        "ffmpeg should see the connection drop"
    );
    Ok(())
}

#[tokio::test]
async fn rtmp_sink_error_disconnects_publisher() -> Result<()> {
    let h = Harness::start(RtmpConfig::default(), Some(40)).await?;
    let child = spawn(ffmpeg_publish(&h.url(GOOD_KEY), 600), "ffmpeg")?;
    h.wait_until("finish", |e| {
        e.iter().any(|e| matches!(e, Event::Finished(_)))
    })
    .await?;
    ensure!(h.finished() == Some(EndReason::ServerEnded));
    ensure!(h.frames().len() == 40);
    let output = wait_exit(child).await?;
    ensure!(
        !output.status.success(),
        "ffmpeg should see the connection drop"
    );
    Ok(())
}

#[tokio::test]
async fn rtmp_shutdown_ends_publishes_and_returns() -> Result<()> {
    let mut h = Harness::start(RtmpConfig::default(), None).await?;
    let child = long_publish(&h).await?;
    h.shutdown.cancel();
    let server = h.server.take().context("server handle")?;
    tokio::time::timeout(DEADLINE, server)
        .await
        .context("run() did not return after shutdown")??;
    ensure!(h.finished() == Some(EndReason::ServerEnded));
    let output = wait_exit(child).await?;
    ensure!(
        !output.status.success(),
        "ffmpeg should see the connection drop"
    );
    Ok(())
}

/// What goes wrong between a publisher and the server once it is streaming.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// The connection is reset (RST) in the middle of an RTMP chunk.
    ResetMidChunk,
    /// The publisher's machine vanishes: no more bytes, no FIN, no RST.
    HalfOpen,
}

/// A TCP proxy for one publisher that forwards both ways until `trip` is cancelled, then
/// injects `fault`. Returns its address; the task holds the sockets until it is aborted.
async fn faulty_proxy(
    server: SocketAddr,
    fault: Fault,
    trip: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let Ok((mut client, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut upstream) = TcpStream::connect(server).await else {
            return;
        };
        let (mut up_buf, mut down_buf) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
        loop {
            tokio::select! {
                r = client.read(&mut up_buf) => match r {
                    Ok(n) if n > 0 => {
                        if upstream.write_all(&up_buf[..n]).await.is_err() {
                            return;
                        }
                    }
                    _ => return,
                },
                r = upstream.read(&mut down_buf) => match r {
                    Ok(n) if n > 0 => {
                        if client.write_all(&down_buf[..n]).await.is_err() {
                            return;
                        }
                    }
                    _ => return,
                },
                _ = trip.cancelled() => break,
            }
        }
        match fault {
            Fault::ResetMidChunk => {
                // A few bytes of the next read (a chunk header without its payload, or part
                // of a payload), then RST.
                if let Ok(n) = client.read(&mut up_buf).await {
                    let _ = upstream.write_all(&up_buf[..n.min(7)]).await;
                }
                let _ = upstream.set_zero_linger();
                drop(upstream);
                // The publisher's side stays open: only the server sees the reset.
                std::future::pending::<()>().await;
            }
            Fault::HalfOpen => {
                // Hold both open and silent until the test ends.
                let _keep = (client, upstream);
                std::future::pending::<()>().await;
            }
        }
    });
    Ok((addr, task))
}

/// Publishes through a faulty proxy, trips the fault once frames flow, and checks that the
/// server ends the publish as lost and lets the publisher straight back in.
async fn publisher_fault_ends_the_publish_and_the_key_is_free_again(
    config: RtmpConfig,
    fault: Fault,
) -> Result<()> {
    let h = Harness::start(config, None).await?;
    let trip = CancellationToken::new();
    let (proxy, proxy_task) = faulty_proxy(h.addr, fault, trip.clone()).await?;
    let _ffmpeg = spawn(
        ffmpeg_publish(&format!("rtmp://{proxy}/live/{GOOD_KEY}"), 600),
        "ffmpeg",
    )?;
    h.wait_until("30 video frames", |e| video_frames(&frames(e)).len() >= 30)
        .await?;
    trip.cancel();
    h.wait_until("the publish to end", |e| {
        e.iter().any(|e| matches!(e, Event::Finished(_)))
    })
    .await?;
    ensure!(
        matches!(h.finished(), Some(EndReason::PublisherLost(_))),
        "{:?}",
        h.finished()
    );
    assert_well_formed(&h.frames())?;
    proxy_task.abort();

    // The same key publishes again at once, directly.
    let before = h.frames().len();
    let again = spawn(ffmpeg_publish(&h.url(GOOD_KEY), 2), "ffmpeg")?;
    h.wait_until("a second publish", |e| {
        e.iter()
            .filter(|e| matches!(e, Event::Authorized(_)))
            .count()
            == 2
    })
    .await?;
    let output = wait_exit(again).await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    ensure!(h.frames().len() > before + 30, "{}", summary(&h.events()));
    Ok(())
}

#[tokio::test]
async fn rtmp_publisher_reset_mid_chunk_ends_the_publish_and_frees_the_key() -> Result<()> {
    publisher_fault_ends_the_publish_and_the_key_is_free_again(
        RtmpConfig::default(),
        Fault::ResetMidChunk,
    )
    .await
}

#[tokio::test]
async fn rtmp_half_open_publisher_is_dropped_after_the_idle_timeout() -> Result<()> {
    let config = RtmpConfig {
        idle_timeout: Duration::from_secs(2),
        ..RtmpConfig::default()
    };
    publisher_fault_ends_the_publish_and_the_key_is_free_again(config, Fault::HalfOpen).await
}
