//! Fuzzing harnesses (issue 17), each `#[ignore]`d so that `make test` stays fast: `make fuzz`
//! runs every one for `FUZZ_SECONDS` (tests/fuzzing/mod.rs has the mutator and the rules).
//!
//! Seeds come from real clients (ffmpeg publishing over RTMP, the API's own bodies, playlists the
//! server writes), and the inputs go through the real code: the RTMP server's connection code
//! over TCP (handshake, chunk stream, AMF0 commands, FLV tags, AVC/AAC configuration), the HTTP
//! API of a running livefront (every JSON body), and the parsers of SRT stream ids, H.264
//! configuration, the playlists read back after a crash and the purchase signature header.
mod common;
mod fuzzing;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{TimeZone, Utc};
use fuzzing::{Campaign, panic_count};
use livefront::ingest::rtmp::{RtmpConfig, RtmpServer};
use livefront::ingest::{EndReason, Error, MediaFrame, MediaSink, Proto, Publishers};
use rand::Rng;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The stream key of the captured publish (any key is let in here).
const KEY: &str = "fuzzkey0123456789";
/// An RTMP exchange that outlives this is a hang (counted, not a failure: the server's own
/// timeouts are what end it).
const EXCHANGE_LIMIT: Duration = Duration::from_secs(10);
/// How long a fuzzing client waits for the server's answer at a pause point before going on
/// (a mutated command often gets none; loopback answers take a few milliseconds).
const PAUSE_LIMIT: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// RTMP

#[derive(Default)]
struct Counts {
    authorized: AtomicU64,
    frames: AtomicU64,
    video_configs: AtomicU64,
    audio_configs: AtomicU64,
}

/// Lets every key publish and counts what arrives, per key (each fuzzing worker has its own).
struct AnyKey(
    std::sync::Mutex<std::collections::HashMap<String, Arc<Counts>>>,
    CancellationToken,
);

impl AnyKey {
    fn counts(&self, key: &str) -> Arc<Counts> {
        let mut keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Mutated keys would grow the map without bound: they all count as one.
        let key = if keys.len() < 64 || keys.contains_key(key) {
            key
        } else {
            "other"
        };
        keys.entry(key.to_string()).or_default().clone()
    }
}

struct CountingSink(Arc<Counts>, CancellationToken);

impl Publishers for AnyKey {
    type Sink = CountingSink;

    fn authorize(
        &self,
        key: &str,
        _proto: Proto,
    ) -> impl Future<Output = Result<CountingSink, Error>> + Send {
        let counts = self.counts(key);
        counts.authorized.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(CountingSink(counts, self.1.clone())))
    }

    /// Only RTSP pulls come this way; this server never pulls.
    fn authorize_pull(
        &self,
        id: &livefront::store::StreamId,
    ) -> impl Future<Output = Result<CountingSink, Error>> + Send {
        std::future::ready(Err(Error::Ended(id.to_string())))
    }
}

impl MediaSink for CountingSink {
    fn push(&mut self, frame: MediaFrame) -> Result<(), Error> {
        self.0.frames.fetch_add(1, Ordering::Relaxed);
        match frame {
            MediaFrame::VideoConfig { .. } => self.0.video_configs.fetch_add(1, Ordering::Relaxed),
            MediaFrame::AudioConfig { .. } => self.0.audio_configs.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        Ok(())
    }

    fn finish(self, _reason: EndReason) {}

    fn ended(&self) -> impl Future<Output = ()> + Send + 'static {
        self.1.clone().cancelled_owned()
    }
}

struct Rtmp {
    addr: std::net::SocketAddr,
    publishers: Arc<AnyKey>,
    shutdown: CancellationToken,
}

impl Rtmp {
    async fn start() -> Result<Rtmp> {
        let config = RtmpConfig {
            setup_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(2),
            max_pending_per_address: 64,
            ..RtmpConfig::default()
        };
        let server = RtmpServer::bind("127.0.0.1:0".parse()?)
            .await?
            .with_config(config);
        let addr = server.local_addr();
        let shutdown = CancellationToken::new();
        let publishers = Arc::new(AnyKey(Default::default(), CancellationToken::new()));
        tokio::spawn(server.run(publishers.clone(), shutdown.clone()));
        Ok(Rtmp {
            addr,
            publishers,
            shutdown,
        })
    }
}

impl Drop for Rtmp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What a real publisher sends: ffmpeg publishes a second of H.264 + AAC through a recording
/// proxy in front of the server. Returns the client's bytes (C0, C1, C2, then the chunk stream).
async fn capture_ffmpeg_publish(server: std::net::SocketAddr) -> Result<Vec<u8>> {
    let proxy = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("rtmp://{}/live/{KEY}", proxy.local_addr()?);
    let mut ffmpeg = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "5",
        ])
        .args([
            "-bf", "2", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", "-f", "flv", &url,
        ])
        .kill_on_drop(true)
        .spawn()
        .context("ffmpeg is required (apt-get install ffmpeg)")?;
    let (client, _) = tokio::time::timeout(common::DEADLINE, proxy.accept()).await??;
    let upstream = TcpStream::connect(server).await?;
    let (mut client_r, mut client_w) = client.into_split();
    let (mut up_r, mut up_w) = upstream.into_split();
    let down = tokio::spawn(async move { tokio::io::copy(&mut up_r, &mut client_w).await });
    let mut sent = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::time::timeout(common::DEADLINE, client_r.read(&mut buf)).await??;
        if n == 0 {
            break;
        }
        sent.extend_from_slice(&buf[..n]);
        if up_w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    drop(up_w);
    let status = tokio::time::timeout(common::DEADLINE, ffmpeg.wait()).await??;
    down.abort();
    anyhow::ensure!(status.success(), "ffmpeg failed: {status}");
    anyhow::ensure!(
        sent.len() > 3073 + 1000,
        "captured only {} bytes",
        sent.len()
    );
    Ok(sent)
}

/// Splits a captured exchange: the handshake's C0+C1 (1537 bytes), then what follows C2.
fn split_capture(captured: &[u8]) -> (&[u8], &[u8]) {
    (&captured[..1537], &captured[1 + 1536 + 1536..])
}

/// How an RTMP exchange ended.
async fn read_until_closed(socket: &mut TcpStream) -> &'static str {
    let mut buf = vec![0u8; 16 * 1024];
    let read = async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) => return "closed",
                Ok(_) => continue,
                Err(_) => return "reset",
            }
        }
    };
    tokio::time::timeout(EXCHANGE_LIMIT, read)
        .await
        .unwrap_or("hang")
}

/// Where a publisher waits for the server in the captured chunk stream: after `connect` (for its
/// `_result`: the server only takes `createStream` once the connection is accepted) and after
/// `publish` (for `NetStream.Publish.Start`: media before it is not taken). Byte offsets.
fn pause_points(chunks: &[u8]) -> Result<[usize; 2]> {
    use rml_rtmp::chunk_io::ChunkDeserializer;
    use rml_rtmp::messages::RtmpMessage;
    let mut reader = ChunkDeserializer::new();
    let (mut connect, mut publish) = (None, None);
    for (i, byte) in chunks.iter().enumerate() {
        let Some(payload) = reader.get_next_message(std::slice::from_ref(byte))? else {
            continue;
        };
        match payload.to_rtmp_message()? {
            RtmpMessage::SetChunkSize { size } => reader.set_max_chunk_size(size as usize)?,
            RtmpMessage::Amf0Command { command_name, .. } if command_name == "connect" => {
                connect = Some(i + 1)
            }
            RtmpMessage::Amf0Command { command_name, .. } if command_name == "publish" => {
                publish = Some(i + 1);
                break;
            }
            _ => {}
        }
    }
    Ok([
        connect.context("connect in the capture")?,
        publish.context("publish in the capture")?,
    ])
}

/// Reads what the server sends until `marker` shows up; false when it closed (or went quiet).
async fn wait_for_server(socket: &mut TcpStream, marker: &[u8], limit: Duration) -> bool {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 8192];
    let wait = async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(marker.len()).any(|w| w == marker) {
                        return true;
                    }
                }
            }
        }
    };
    tokio::time::timeout(limit, wait).await.unwrap_or(false)
}

/// One connection: a proper client handshake, then `payload` as the chunk stream (waiting for
/// the server at `pauses`, as a publisher does), then EOF.
async fn rtmp_session(
    addr: std::net::SocketAddr,
    payload: &[u8],
    pauses: [usize; 2],
    pause_limit: Duration,
) -> Result<&'static str> {
    let mut socket = TcpStream::connect(addr).await?;
    let mut handshake = Handshake::new(PeerType::Client);
    socket
        .write_all(&handshake.generate_outbound_p0_and_p1()?)
        .await?;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = tokio::time::timeout(EXCHANGE_LIMIT, socket.read(&mut buf)).await??;
        anyhow::ensure!(n > 0, "closed during the handshake");
        match handshake.process_bytes(&buf[..n])? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes: _,
            } => {
                socket.write_all(&response_bytes).await?;
                break;
            }
        }
    }
    let [connect, publish] = pauses.map(|p| p.min(payload.len()));
    let steps: [(&[u8], &[u8]); 3] = [
        (&payload[..connect], b"_result"),
        (
            &payload[connect..publish.max(connect)],
            b"NetStream.Publish.Start",
        ),
        (&payload[publish.max(connect)..], b""),
    ];
    for (bytes, marker) in steps {
        // The server may close early (a refused command): what it read is what counts.
        if socket.write_all(bytes).await.is_err() {
            return Ok(read_until_closed(&mut socket).await);
        }
        if !marker.is_empty() && !wait_for_server(&mut socket, marker, pause_limit).await {
            break;
        }
    }
    let _ = socket.shutdown().await;
    Ok(read_until_closed(&mut socket).await)
}

/// One connection that sends `bytes` raw from the first byte (the handshake itself mutated).
async fn rtmp_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Result<&'static str> {
    let mut socket = TcpStream::connect(addr).await?;
    if socket.write_all(bytes).await.is_ok() {
        let _ = socket.shutdown().await;
    }
    Ok(read_until_closed(&mut socket).await)
}

fn bucket(n: u64) -> &'static str {
    match n {
        0 => "0",
        1..=3 => "1-3",
        4..=15 => "4-15",
        _ => "16+",
    }
}

/// Connections in flight at once: an exchange mostly waits (for the server's answers, or a
/// little at a pause point where a mutated command gets none).
const RTMP_WORKERS: usize = 8;

/// The stream key of worker `w`, as long as [`KEY`] (so that it can replace it in place).
fn worker_key(w: usize) -> String {
    format!("{}{w:02}", &KEY[..KEY.len() - 2])
}

/// `input` with the captured key replaced by the worker's (where the key is still intact).
fn with_key(input: &[u8], key: &str) -> Vec<u8> {
    let mut out = input.to_vec();
    let from = KEY.as_bytes();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(key.as_bytes());
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

/// Runs a campaign of RTMP exchanges, `RTMP_WORKERS` at a time, each worker publishing to its own
/// key so that what arrives is told apart; `raw` sends the input from the first byte. A panic in
/// livefront's code is charged to every exchange in flight when it happened.
async fn rtmp_campaign(name: &'static str, raw: bool) -> Result<()> {
    let server = Rtmp::start().await?;
    let captured = capture_ffmpeg_publish(server.addr).await?;
    let (c0c1, chunks) = split_capture(&captured);
    let pauses = pause_points(chunks)?;
    let seeds = if raw {
        vec![
            c0c1.to_vec(),
            [c0c1, &[0u8; 1536][..], &chunks[..chunks.len().min(4096)]].concat(),
        ]
    } else {
        // The whole publish, and its first messages alone (commands, metadata, configs): most
        // mutations then land in structure rather than in picture data.
        vec![
            chunks.to_vec(),
            chunks[..chunks.len().min(4096)].to_vec(),
            chunks[..chunks.len().min(1024)].to_vec(),
        ]
    };
    let before = server.publishers.counts(KEY).frames.load(Ordering::Relaxed);
    anyhow::ensure!(
        before > 10,
        "the captured publish delivered frames: {before}"
    );
    let mut campaign = Campaign::new(name, seeds);
    let mut workers = tokio::task::JoinSet::new();
    let mut idle: Vec<usize> = (0..RTMP_WORKERS).collect();
    let addr = server.addr;
    loop {
        while let Some(w) = idle.pop() {
            let Some(input) = campaign.next_input() else {
                break;
            };
            let counts = server.publishers.counts(&worker_key(w));
            let sent = with_key(&input, &worker_key(w));
            workers.spawn(async move {
                let panics = panic_count();
                let snapshot = |c: &Counts| {
                    [&c.authorized, &c.frames, &c.video_configs, &c.audio_configs]
                        .map(|a| a.load(Ordering::Relaxed))
                };
                let start = snapshot(&counts);
                let end = if raw {
                    rtmp_raw(addr, &sent).await
                } else {
                    rtmp_session(addr, &sent, pauses, PAUSE_LIMIT).await
                };
                let now = snapshot(&counts);
                let d = |i: usize| now[i] - start[i];
                let outcome = format!(
                    "{} publish={} frames={} video_config={} audio_config={}",
                    end.unwrap_or("refused"),
                    d(0),
                    bucket(d(1)),
                    d(2),
                    d(3)
                );
                (w, input, panics, outcome)
            });
        }
        let Some(done) = workers.join_next().await else {
            break;
        };
        let (w, input, panics, outcome) = done?;
        campaign.check_panics(panics, &input);
        campaign.outcome(&input, outcome);
        idle.push(w);
    }
    // Still serving: the captured publish goes through as at the start.
    let counts = server.publishers.counts(KEY);
    let frames = counts.frames.load(Ordering::Relaxed);
    let end = rtmp_session(server.addr, chunks, pauses, common::DEADLINE).await?;
    let replayed = counts.frames.load(Ordering::Relaxed) - frames;
    let result = campaign.finish();
    anyhow::ensure!(
        replayed + 2 >= before,
        "a real publish still gets through after the campaign: {replayed} frames of {before} ({end})"
    );
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fuzzing: make fuzz"]
async fn fuzz_rtmp_chunk_stream_amf0_and_flv() -> Result<()> {
    common::init_logs();
    rtmp_campaign("rtmp_session", false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fuzzing: make fuzz"]
async fn fuzz_rtmp_handshake() -> Result<()> {
    common::init_logs();
    rtmp_campaign("rtmp_handshake", true).await
}

// ---------------------------------------------------------------------------------------------
// SRT: MPEG-TS into a running livefront

/// SRT exchanges in flight (each publishes to a stream of its own).
const SRT_WORKERS: usize = 4;
/// What an SRT publisher puts in one message: 7 TS packets.
const TS_MESSAGE: usize = 1316;

/// A second of H.264 + AAC in MPEG-TS, as ffmpeg sends it over SRT.
async fn ffmpeg_ts() -> Result<Vec<u8>> {
    let out = common::run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "5",
            "-bf",
            "2",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "32k",
            "-f",
            "mpegts",
            "-",
        ],
        common::DEADLINE,
    )
    .await?;
    anyhow::ensure!(
        out.status.success() && out.stdout.len() > 10 * 188,
        "ffmpeg mpegts: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

/// Publishes `ts` over SRT with `key` as fast as SRT takes it, then closes. How it ended.
async fn srt_publish(addr: std::net::SocketAddr, key: &str, ts: &[u8]) -> &'static str {
    use futures_util::SinkExt;
    let stream_id = format!("publish:{key}");
    let call = srt_tokio::SrtSocket::builder()
        .latency(Duration::from_millis(120))
        .call(addr, Some(&stream_id));
    let mut socket = match tokio::time::timeout(EXCHANGE_LIMIT, call).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(_)) => return "refused",
        Err(_) => return "handshake hang",
    };
    let mut end = "sent";
    for message in ts.chunks(TS_MESSAGE) {
        let send = socket.send((
            std::time::Instant::now(),
            bytes::Bytes::copy_from_slice(message),
        ));
        match tokio::time::timeout(EXCHANGE_LIMIT, send).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                end = "send error";
                break;
            }
            Err(_) => {
                end = "send hang";
                break;
            }
        }
    }
    let _ = tokio::time::timeout(EXCHANGE_LIMIT, socket.close()).await;
    end
}

/// A new stream of the demo creator; returns its id and key.
async fn new_stream(api: &common::Api, token: &str) -> Result<(String, String)> {
    let v = api.create_stream(token, "fuzz").await?;
    let id = v["id"].as_str().context("id")?.to_string();
    let key = v["stream_key"].as_str().context("key")?.to_string();
    Ok((id, key))
}

/// A stream whose publisher left must be over (ended, or ready when no media got through) within
/// this: a longer wait is a hang in its pipeline or finalising.
const SRT_END_LIMIT: Duration = Duration::from_secs(30);

/// What became of a stream a mutated publish went to, once its publish is over; `Err` when the
/// API stops answering or the stream never gets over it.
async fn stream_outcome(api: &common::Api, token: &str, id: &str) -> Result<String, String> {
    let start = std::time::Instant::now();
    loop {
        let (status, v) = api
            .get(&format!("/api/v1/streams/{id}"), Some(token))
            .await
            .map_err(|e| format!("GET /api/v1/streams/{id}: {e:#}"))?;
        if status != 200 {
            return Err(format!("GET /api/v1/streams/{id} answered {status}: {v}"));
        }
        if v["health"].is_null() && v["state"] != "live" {
            return Ok(format!(
                "state={} recording={}",
                v["state"].as_str().unwrap_or("?"),
                v["recording"]["state"].as_str().unwrap_or("-"),
            ));
        }
        if start.elapsed() > SRT_END_LIMIT {
            return Err(format!(
                "stream {id} not over {SRT_END_LIMIT:?} after its publisher left: {}",
                v["state"]
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Mutated MPEG-TS from real SRT callers (srt-tokio) into a running livefront: the stream-id
/// check, the TS demuxer, the frames into each stream's pipeline, its end and finalising. Each
/// exchange publishes to a new stream. The server must not panic, must keep answering the API,
/// and a real ffmpeg publisher must still get in afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fuzzing: make fuzz"]
async fn fuzz_mpegts_over_srt_into_a_running_server() -> Result<()> {
    let mut server = common::Server::start_with(|c| {
        // A dropped publisher's stream ends at once: every exchange is a whole publish.
        c.ingest.reconnect_grace = Duration::from_millis(100);
    })
    .await?;
    let api = server.api.clone();
    let token = server.demo_token.clone();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", server.srt_port()).parse()?;
    let ts = ffmpeg_ts().await?;
    // The whole second, and its start alone (PAT, PMT, the first frames): most mutations then
    // land in structure rather than in picture data.
    let seeds = vec![ts.clone(), ts[..ts.len().min(16 * TS_MESSAGE)].to_vec()];
    let mut campaign = Campaign::new("srt_mpegts", seeds);
    let mut workers = tokio::task::JoinSet::new();
    let mut idle = SRT_WORKERS;
    loop {
        while idle > 0 {
            let Some(input) = campaign.next_input() else {
                break;
            };
            idle -= 1;
            let (api, token) = (api.clone(), token.clone());
            workers.spawn(async move {
                let panics = panic_count();
                let (id, key) = match new_stream(&api, &token).await {
                    Ok(s) => s,
                    Err(e) => return (input, panics, Err(format!("create stream: {e:#}"))),
                };
                let end = srt_publish(addr, &key, &input).await;
                let outcome = stream_outcome(&api, &token, &id)
                    .await
                    .map(|state| format!("{end} {state}"))
                    .map_err(|e| format!("{end}; then {e}"));
                (input, panics, outcome)
            });
        }
        let Some(done) = workers.join_next().await else {
            break;
        };
        idle += 1;
        let (input, panics, outcome) = done?;
        campaign.check_panics(panics, &input);
        match outcome {
            Ok(outcome) => campaign.outcome(&input, outcome),
            Err(what) => campaign.crash(&input, what),
        }
    }
    // Still serving: the API answers and a real publisher gets in.
    assert_eq!(api.status("/api/v1/home", None).await?, 200);
    let (id, key) = new_stream(&api, &token).await?;
    let url = format!(
        "srt://127.0.0.1:{}?streamid=publish:{key}&latency=120000",
        server.srt_port()
    );
    let _publisher = common::Publish::small(20.0).spawn_to("mpegts", &url)?;
    common::source_segments(&api, &token, &id, 2)
        .await
        .context("a real SRT publisher after the campaign")?;
    server.stop().await;
    campaign.finish()
}

// ---------------------------------------------------------------------------------------------
// Parsers without a server

/// Runs `f` on each input; a panic is a crash.
fn pure_campaign(
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    f: impl Fn(&[u8]) -> Result<String, String>,
) -> Result<()> {
    let mut campaign = Campaign::new(name, seeds);
    while let Some(input) = campaign.next_input() {
        let panics = panic_count();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&input))) {
            Ok(Ok(outcome)) => campaign.outcome(&input, outcome),
            Ok(Err(_)) => {
                let small = fuzzing::minimize(&input, |i| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i).is_err()))
                        .unwrap_or(false)
                });
                let broken = f(&small).err().unwrap_or_default();
                campaign.crash(&small, broken);
            }
            Err(_) => campaign.check_panics(panics, &input),
        }
    }
    campaign.finish()
}

/// Annex B H.264 of a tiny picture from ffmpeg: its SPS and PPS NAL units.
fn ffmpeg_parameter_sets() -> Result<(Vec<u8>, Vec<u8>)> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
            "-frames:v",
            "1",
        ])
        .args([
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
        ])
        .args(["-f", "h264", "-"])
        .output()
        .context("ffmpeg is required (apt-get install ffmpeg)")?;
    let data = out.stdout;
    let mut nals = Vec::new();
    let mut i = 0;
    let mut start = None;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            if let Some(s) = start {
                let mut end = i;
                while end > s && data[end - 1] == 0 {
                    end -= 1;
                }
                nals.push(data[s..end].to_vec());
            }
            start = Some(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        nals.push(data[s..].to_vec());
    }
    let find = |t: u8| {
        nals.iter()
            .find(|n| n.first().is_some_and(|b| b & 0x1f == t))
            .cloned()
    };
    Ok((find(7).context("an SPS")?, find(8).context("a PPS")?))
}

#[test]
#[ignore = "fuzzing: make fuzz"]
fn fuzz_avc_decoder_configuration_and_sps() -> Result<()> {
    let (sps, pps) = ffmpeg_parameter_sets()?;
    let mut avcc = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    avcc.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(&sps);
    avcc.push(1);
    avcc.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(&pps);
    let parsed = livefront::ingest::avc::parse_avcc(&avcc).context("the seed parses")?;
    assert_eq!((parsed.width, parsed.height), (320, 240));
    pure_campaign("avc_config", vec![avcc, sps], |input| {
        let avcc = livefront::ingest::avc::parse_avcc(input);
        let sps = livefront::ingest::avc::parse_sps(input);
        if let Some(info) = &avcc {
            // What is shown to creators is computed from it: must not panic either.
            let _ = (info.profile_name(), info.level_name());
        }
        Ok(format!(
            "avcc={} sps={}",
            avcc.is_some(),
            sps.map(|s| s.profile_idc).is_some()
        ))
    })
}

#[test]
#[ignore = "fuzzing: make fuzz"]
fn fuzz_hevc_decoder_configuration_and_enhanced_rtmp_tags() -> Result<()> {
    // x265 Main 320x240 (GStreamer x265enc ! h265parse), as OBS or the example publisher send it.
    let hvcc = hex::decode(
        "0101600000009000000000003ff000fcfdf8f800000f03200001001840010c01ffff01600000030090000003\
         000003003fba0240210001002f42010101600000030090000003000003003fa00a080f165ba4a4c2fff000\
         100016a0c0c0c080000003008000000c8422000100064401c0718312",
    )?;
    let parsed = livefront::ingest::hevc::parse_hvcc(&hvcc).context("the seed parses")?;
    assert_eq!((parsed.width, parsed.height), (320, 240));
    let tag = [&[0x90][..], b"hvc1", &hvcc].concat();
    pure_campaign("hevc_config", vec![hvcc, tag], |input| {
        let hvcc = livefront::ingest::hevc::parse_hvcc(input);
        if let Some(info) = &hvcc {
            let _ = (info.profile_name(), info.level_name(), info.codec_string());
        }
        let tag = livefront::ingest::rtmp::flv::parse_video(&bytes::Bytes::copy_from_slice(input));
        Ok(format!("hvcc={} tag={}", hvcc.is_some(), tag.is_ok()))
    })
}

#[test]
#[ignore = "fuzzing: make fuzz"]
fn fuzz_av1_configuration_record_obus_and_enhanced_rtmp_tags() -> Result<()> {
    use livefront::ingest::av1;
    // libaom (GStreamer av1enc) 320x180 Main 8 bit: the av1C the example publisher sends, an
    // `av01` SequenceStart tag with it, and a CodedFrames tag of a keyframe temporal unit.
    let av1c = hex::decode("81000c000a0c000000043cfecf81b5f20080")?;
    let parsed = av1::parse_av1c(&av1c).context("the seed parses")?;
    assert_eq!((parsed.width, parsed.height), (320, 180));
    let start = [&[0x90][..], b"av01", &av1c].concat();
    let frame = [
        &[0x91][..],
        b"av01",
        &av1c[4..],
        &[0x32, 0x03, 0xaa, 0xbb, 0xcc],
    ]
    .concat();
    pure_campaign("av1_config", vec![av1c, start, frame], |input| {
        let av1c = av1::parse_av1c(input);
        if let Some(info) = &av1c {
            let _ = (info.profile_name(), info.level_name(), info.codec_string());
        }
        let obus = av1::obus(input).take_while(Result::is_ok).count();
        let record = av1::config_record(input).is_some();
        let tag = livefront::ingest::rtmp::flv::parse_video(&bytes::Bytes::copy_from_slice(input));
        Ok(format!(
            "av1c={} obus={obus} record={record} tag={}",
            av1c.is_some(),
            tag.is_ok()
        ))
    })
}

#[test]
#[ignore = "fuzzing: make fuzz"]
fn fuzz_srt_stream_id() -> Result<()> {
    use livefront::ingest::srt::stream_id::publish_key;
    let seeds = [
        "publish:abcdef0123456789",
        "abcdef0123456789",
        "#!::r=abcdef0123456789,m=publish",
        "#!::u=bob,r=abcdef0123456789,m=publish,s=x,h=host,t=stream",
        "read:abcdef0123456789",
        "#!::r=abc,m=request",
    ];
    pure_campaign(
        "srt_stream_id",
        seeds.iter().map(|s| s.as_bytes().to_vec()).collect(),
        |input| {
            let text = String::from_utf8_lossy(input);
            let outcome = match publish_key(Some(&text)) {
                Ok(key) => {
                    // The key is a part of what was sent, never empty.
                    if key.is_empty() || !text.contains(key) {
                        return Err(format!("key {key:?} from {text:?}"));
                    }
                    "key".to_string()
                }
                // The variant only (the mode it names comes from the input).
                Err(e) => format!("{e:?}")
                    .split('(')
                    .next()
                    .unwrap_or_default()
                    .into(),
            };
            Ok(outcome)
        },
    )
}

#[test]
#[ignore = "fuzzing: make fuzz"]
fn fuzz_playlist_read_back_after_a_crash() -> Result<()> {
    use livefront::output::playlist::{MediaPlaylist, Segment};
    let target = Duration::from_secs(2);
    // What the server writes: a live event playlist with a reconnect, and the same ended.
    let mut live = MediaPlaylist::new(6, target);
    let start = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
    for i in 0..8u32 {
        let at = start + chrono::TimeDelta::milliseconds(2002 * i64::from(i));
        let mut seg = Segment::new(format!("seg{i:05}.ts"), Duration::from_millis(2002), at);
        seg.discontinuity = i == 5;
        live.push(seg);
    }
    live.flush()?;
    let open = live.render_event(None)?;
    live.end();
    live.flush()?;
    let ended = live.render_event(None)?;
    pure_campaign(
        "playlist_restore",
        vec![open.into_bytes(), ended.into_bytes()],
        |input| {
            let text = String::from_utf8_lossy(input);
            match MediaPlaylist::parse_event(&text, 6, target) {
                Ok(mut list) => {
                    // What was read back continues (one more segment written after it), and
                    // reads back the same again.
                    let at = list.last_segment().map_or(start, Segment::end);
                    list.reopen();
                    list.push(Segment::new("seg99999.ts", target, at));
                    list.flush()
                        .map_err(|e| format!("continuing a restore: {e}"))?;
                    let again = list
                        .render_event(None)
                        .map_err(|e| format!("rendering a restore: {e}"))?;
                    let back = MediaPlaylist::parse_event(&again, 6, target)
                        .map_err(|e| format!("re-reading a continued restore: {e}\n{again}"))?;
                    if back.segment_count() != list.segment_count() {
                        return Err(format!("segments changed on a re-read:\n{again}"));
                    }
                    Ok(format!("ok segments={}", bucket(list.segment_count())))
                }
                Err(e) => Ok(format!("{e:?}").chars().take(20).collect()),
            }
        },
    )
}

#[test]
#[ignore = "fuzzing: make fuzz"]
fn fuzz_purchase_signature_header() -> Result<()> {
    use livefront::webhooks::signature::{sign, verify};
    let secret = b"shop-secret-0123456789";
    let body = br#"{"order_id":"o-1","items":[],"at":"2026-12-03T12:00:00Z"}"#;
    let now = 1_796_300_000;
    let seeds = vec![
        sign(secret, now, body).into_bytes(),
        format!("v1=00, t={}", i64::MIN).into_bytes(),
    ];
    let good = sign(secret, now, body);
    let mac = good[good.len() - 64..].to_string();
    pure_campaign("purchase_signature", seeds, |input| {
        let header = String::from_utf8_lossy(input);
        let verdict = verify(secret, &header, body, now);
        // Only the right MAC passes (hex of either case, fields in any order, spaces around).
        if verdict.is_ok() && !header.to_ascii_lowercase().contains(&mac) {
            return Err(format!("{header:?} passed"));
        }
        Ok(format!("{verdict:?}"))
    })
}

// ---------------------------------------------------------------------------------------------
// JSON bodies, through the HTTP API of a running livefront

const SHOP_SECRET: &str = "shop-secret-for-fuzzing-0123";

/// (method, path, who, seed body). `{id}`, `{product}` are filled in.
const ENDPOINTS: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/api/v1/streams",
        "creator",
        r#"{"title":"x","category":"beauty","scheduled_at":"2026-12-24T18:00:00Z","mode":"practice","ladder":"passthrough"}"#,
    ),
    (
        "POST",
        "/api/v1/streams",
        "creator",
        r#"{"title":"cam","source":{"url":"rtsp://example.com/live","transport":"tcp"}}"#,
    ),
    (
        "PATCH",
        "/api/v1/streams/{id}",
        "creator",
        r#"{"title":"y","category":null,"scheduled_at":"2027-01-01T00:00:00Z"}"#,
    ),
    (
        "PUT",
        "/api/v1/streams/{id}/mode",
        "creator",
        r#"{"mode":"public"}"#,
    ),
    (
        "PUT",
        "/api/v1/streams/{id}/products",
        "creator",
        r#"{"product_ids":["{product}"]}"#,
    ),
    (
        "PUT",
        "/api/v1/streams/{id}/focus",
        "creator",
        r#"{"product_id":"{product}"}"#,
    ),
    (
        "POST",
        "/api/v1/streams/{id}/promos",
        "creator",
        r#"{"code":"SAVE10","description":"d","discount":"10%","live_only":true,"starts_at":"2026-12-01T00:00:00Z","ends_at":"2027-01-01T00:00:00Z","max_redemptions":5}"#,
    ),
    (
        "POST",
        "/api/v1/products",
        "creator",
        r#"{"sku":"s1","title":"Mug","price":"12.50","currency":"EUR","image_url":"https://shop.example/m.jpg","url":"https://shop.example/p/1","category":"home"}"#,
    ),
    (
        "PATCH",
        "/api/v1/products/{product}",
        "creator",
        r#"{"price":"9.99","url":"https://shop.example/p/2"}"#,
    ),
    (
        "PATCH",
        "/api/v1/me",
        "creator",
        r#"{"associate_tag":"tag-21"}"#,
    ),
    (
        "POST",
        "/api/v1/me/chat/bans",
        "creator",
        r#"{"user":"fan","duration_s":600}"#,
    ),
    (
        "PUT",
        "/api/v1/me/chat/blocked_words",
        "creator",
        r#"{"words":["spam","scam"]}"#,
    ),
    (
        "POST",
        "/api/v1/webhooks",
        "creator",
        r#"{"url":"https://hooks.example/x","events":["stream.public"]}"#,
    ),
    (
        "POST",
        "/api/v1/me/notifications/read",
        "viewer",
        r#"{"ids":[1,2,3]}"#,
    ),
    (
        "POST",
        "/api/v1/reports",
        "viewer",
        r#"{"target":{"stream_id":"{id}","chat_message_id":"m-1"},"reason":"spam"}"#,
    ),
    ("POST", "/api/v1/viewers", "none", r#"{"handle":"fan2"}"#),
    ("POST", "/api/v1/session", "none", r#"{"token":"lft_x"}"#),
    (
        "POST",
        "/api/v1/creators",
        "admin",
        r#"{"handle":"newcreator"}"#,
    ),
    (
        "POST",
        "/api/v1/admin/streams/{id}/takedown",
        "admin",
        r#"{"reason":"r","policy":"spam"}"#,
    ),
    (
        "POST",
        "/api/v1/streams/{id}/flash-sales",
        "creator",
        r#"{"product_id":"{product}","discount_percent":20,"quantity":5,"per_viewer_limit":1,"duration_s":60,"countdown_s":3}"#,
    ),
    (
        "POST",
        "/api/v1/streams/{id}/auctions",
        "creator",
        r#"{"product_id":"{product}","starting_price":"5.00","increments":[{"from":"0","step":"0.50"}],"duration_s":60,"extend_on_bid_s":5}"#,
    ),
    (
        "POST",
        "/api/v1/streams/{id}/auctions/zzzz/bids",
        "viewer",
        r#"{"max_amount":"30.00"}"#,
    ),
    (
        "POST",
        "/api/v1/flash-sales/reservations/zzzz/confirm",
        "shop",
        r#"{"order_id":"o-1"}"#,
    ),
    (
        "POST",
        "/api/v1/purchases",
        "shop",
        r#"{"order_id":"o-1","items":[{"product_id":"{product}","amount":"12.50","currency":"EUR"}],"attribution":"abc","at":"2026-12-03T12:00:00Z"}"#,
    ),
    (
        "POST",
        "/api/v1/purchases",
        "shop",
        r#"{"order_id":"o-2","items":[{"product_id":"{product}","amount":"12.50","currency":"EUR","promo_code":"SAVE10"}],"promo_code":"SAVE10","attribution":"abc","at":"2026-12-03T12:00:00Z"}"#,
    ),
    (
        "POST",
        "/api/v1/streams/{id}/cart-adds",
        "viewer",
        r#"{"product_id":"{product}","embedded":true}"#,
    ),
    (
        "POST",
        "/api/v1/me/push-subscriptions",
        "viewer",
        r#"{"endpoint":"https://push.example/s/1","expirationTime":null,"keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4","auth":"BTBZMqHH6r4Tts7J_aSIgg"}}"#,
    ),
];

const STRINGS: &[&str] = &[
    "",
    " ",
    "a",
    "\u{0}",
    "💥",
    "+10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "javascript:alert(1)",
    "http://127.0.0.1/",
    "https://[::1]/",
    "ftp://x/",
    "../../etc/passwd",
    "NaN",
    "1e309",
    "-1",
    "0.0001",
    "99999999999999999999",
    "EUR",
    "XXX",
    "public",
    "practice",
    "%",
    "100%",
    "-5%",
];

/// A structural change to a JSON value: a value replaced (type, extreme, odd string), a key
/// dropped or added, an array grown.
fn mutate_json(v: &mut Value, rng: &mut impl Rng) {
    fn pick<'a>(v: &'a mut Value, rng: &mut impl Rng) -> &'a mut Value {
        let len = match &*v {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if len == 0 || !rng.random_bool(0.7) {
            return v;
        }
        let i = rng.random_range(0..len);
        match v {
            Value::Object(m) => match m.iter_mut().nth(i) {
                Some((_, child)) => pick(child, rng),
                None => unreachable!("i < len"),
            },
            Value::Array(a) => pick(&mut a[i], rng),
            other => other,
        }
    }
    let target = pick(v, rng);
    match rng.random_range(0..9) {
        0 => *target = Value::Null,
        1 => *target = json!(STRINGS[rng.random_range(0..STRINGS.len())]),
        2 => {
            let n: &[Value] = &[
                json!(0),
                json!(-1),
                json!(i64::MAX),
                json!(u64::MAX),
                json!(i64::MIN),
                json!(1e308),
                json!(-1e308),
                json!(0.5),
                json!(4294967296u64),
            ];
            *target = n[rng.random_range(0..n.len())].clone();
        }
        3 => *target = json!("x".repeat(rng.random_range(0..5000))),
        4 => *target = json!([]),
        5 => *target = json!({}),
        6 => {
            if let Value::Object(m) = target
                && let Some(k) = m.keys().next().cloned()
            {
                m.remove(&k);
            }
        }
        7 => {
            if let Value::Object(m) = target {
                m.insert("unknown".into(), json!(1));
            } else if let Value::Array(a) = target {
                let copy = a.first().cloned().unwrap_or(json!(1));
                let n = rng.random_range(1..600);
                a.extend(std::iter::repeat_n(copy, n));
            }
        }
        _ => *target = json!(rng.random::<bool>()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fuzzing: make fuzz"]
async fn fuzz_json_bodies() -> Result<()> {
    let mut server = common::Server::start_with(|c| {
        c.shop.secret = Some(SHOP_SECRET.into());
    })
    .await?;
    let api = server.api.clone();
    let creator = server.demo_token.clone();
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    let product = api.create_product(&creator, "seed").await?;
    let (_, v) = api
        .request(
            reqwest::Method::POST,
            "/api/v1/viewers",
            None,
            Some(json!({"handle": "fan"})),
        )
        .await?;
    let viewer = v["token"].as_str().context("viewer token")?.to_string();
    let fill = |s: &str| s.replace("{id}", &id).replace("{product}", &product);
    // Input: one byte naming the endpoint, then the body.
    let seeds = ENDPOINTS
        .iter()
        .enumerate()
        .map(|(i, e)| [&[i as u8][..], fill(e.3).as_bytes()].concat())
        .collect();
    let mut campaign = Campaign::new("json_bodies", seeds);
    while let Some(mut input) = campaign.next_input() {
        if input.is_empty() {
            continue;
        }
        // Half the time a structural change to valid JSON (this input's, or else the seed
        // body of its endpoint), so that most of those get past the JSON parser.
        if campaign.rng().random_bool(0.5) {
            let seed = || {
                serde_json::from_str::<Value>(&fill(
                    ENDPOINTS[input[0] as usize % ENDPOINTS.len()].3,
                ))
            };
            let mut v = serde_json::from_slice::<Value>(&input[1..]).or_else(|_| seed())?;
            for _ in 0..campaign.rng().random_range(1..=3) {
                mutate_json(&mut v, campaign.rng());
            }
            input.truncate(1);
            input.extend(serde_json::to_vec(&v)?);
        }
        let (method, path, who, _) = ENDPOINTS[input[0] as usize % ENDPOINTS.len()];
        let body = input[1..].to_vec();
        let mut req = api
            .http
            .request(method.parse()?, api.url(&fill(path)))
            .header("content-type", "application/json");
        req = match who {
            "creator" => req.bearer_auth(&creator),
            "viewer" => req.bearer_auth(&viewer),
            "admin" => req.bearer_auth(common::ADMIN_TOKEN),
            "shop" if campaign.rng().random_bool(0.9) => {
                let t = Utc::now().timestamp();
                req.header(
                    livefront::webhooks::signature::HEADER,
                    livefront::webhooks::signature::sign(SHOP_SECRET.as_bytes(), t, &body),
                )
            }
            _ => req,
        };
        let panics = panic_count();
        let size = body.len();
        let resp = match req.body(body).send().await {
            Ok(resp) => resp,
            Err(e) => {
                // A connection the server closed mid-request (a body over its limit is cut
                // short): fine as long as the server still answers.
                campaign.check_panics(panics, &input);
                if api.status("/api/v1/home", None).await? != 200 {
                    campaign.crash(&input, format!("{method} {path}: {e:#}; then no answer"));
                }
                campaign.outcome(
                    &input,
                    format!("{method} {path} send error, {}k body", size / 1024),
                );
                continue;
            }
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        campaign.check_panics(panics, &input);
        if status >= 500 {
            campaign.crash(&input, format!("{method} {path} answered {status}: {text}"));
        }
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_default();
        campaign.outcome(&input, format!("{method} {path} {status} {code}"));
    }
    // Still serving.
    assert_eq!(api.status("/api/v1/home", None).await?, 200);
    server.stop().await;
    campaign.finish()
}
