//! SRT ingest against real publishers (ffmpeg, srt-live-transmit; killed on drop) and real
//! players (ffprobe): the whole server in-process on 127.0.0.1 ephemeral ports, and the SRT
//! server alone with a `Publishers` that records what arrives (frames, end reasons).
mod common;

use std::future::Future;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::*;
use livefront::ingest::srt::{SrtConfig, SrtServer};
use livefront::ingest::{EndReason, Error, MediaFrame, MediaSink, Proto, Publishers};
use livefront::store::stream_key::redact;
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

const PASSPHRASE: &str = "livefront-test-passphrase";

/// A publisher sending `seconds` of small H.264 (B-frames, 2 s GOP) + AAC as MPEG-TS to `url`.
fn ffmpeg_srt(seconds: f64, url: &str) -> Result<Child> {
    Publish::small(seconds).spawn_to("mpegts", url)
}

/// The stream's HLS media playlist URL for its owner.
fn media_playlist(stream: &Value) -> String {
    media_url(stream["playback"]["hls"].as_str().expect("playback url"))
        .replace("localhost", "127.0.0.1")
}

/// Waits until the stream is live with SRT statistics showing data arriving; returns its health.
async fn live_with_srt_stats(server: &Server, token: &str, id: &str) -> Result<Value> {
    wait_for(
        &format!("srt stats in the health of {id}"),
        DEADLINE,
        || async {
            let v = server.api.stream(token, id).await.ok()?;
            let rate = v["health"]["srt"]["recv_rate_kbps"].as_f64()?;
            (v["state"] == "live" && rate > 0.0).then(|| v["health"].clone())
        },
    )
    .await
}

async fn state(server: &Server, id: &str) -> Result<String> {
    let v = server.api.stream(&server.demo_token, id).await?;
    Ok(v["state"].as_str().unwrap_or_default().to_string())
}

async fn assert_plays(media: &str) -> Result<()> {
    let (codecs, _) = probe(media).await?;
    ensure!(
        codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
        "ffprobe {media}: {codecs:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_publishers_on_one_port_are_routed_by_key_with_srt_stats_in_health() -> Result<()> {
    let mut server = Server::start().await?;
    let token = server.demo_token.clone();
    let a = server.demo_stream.clone();
    let b = server.api.create_stream(&token, "second").await?;
    // A publishes with the URL from the API as is (streamid=publish:KEY); B with the plain key.
    let url_a = server.srt_publish_url(&a);
    let key_b = b["stream_key"].as_str().context("key")?;
    let url_b = format!("srt://127.0.0.1:{}?streamid={key_b}", server.srt_port());
    assert_eq!(
        url_a,
        format!(
            "srt://127.0.0.1:{}?streamid=publish:{}",
            server.srt_port(),
            a["stream_key"].as_str().unwrap()
        )
    );
    let pub_a = ffmpeg_srt(5.0, &url_a)?;
    let pub_b = ffmpeg_srt(5.0, &url_b)?;
    for stream in [&a, &b] {
        let id = stream["id"].as_str().unwrap();
        let health = live_with_srt_stats(&server, &token, id).await?;
        let srt = &health["srt"];
        for field in [
            "rtt_ms",
            "loss_pkts",
            "retransmitted_pkts",
            "recv_rate_kbps",
        ] {
            ensure!(srt[field].is_number(), "srt.{field} in {health}");
        }
        ensure!(health["video"]["width"] == 320, "{health}");
        ensure!(health["audio"]["sample_rate"] == 48000, "{health}");
    }
    for stream in [&a, &b] {
        let media = media_playlist(stream);
        server.api.playlist_with_segments(&media, 1).await?;
        assert_plays(&media).await?;
    }
    for p in [pub_a, pub_b] {
        let (status, stderr) = finish(p, DEADLINE).await?;
        ensure!(status.success(), "publisher failed: {stderr}");
    }
    for stream in [&a, &b] {
        let id = stream["id"].as_str().unwrap();
        let rec = server.api.recording_ready(&token, id).await?;
        ensure!(rec["duration_s"].as_f64().unwrap_or(0.0) > 3.0, "{rec}");
        ensure!(state(&server, id).await? == "ended");
    }
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_live_transmit_publishes_with_the_access_control_stream_id() -> Result<()> {
    let mut server = Server::start().await?;
    let stream = server.demo_stream.clone();
    let key = stream["stream_key"].as_str().context("key")?;
    // ffmpeg writes MPEG-TS to stdout; srt-live-transmit sends it as an SRT caller.
    let mut encoder = Command::new("ffmpeg")
        .args(Publish::small(5.0).args_to("mpegts", "-"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("ffmpeg is required (apt-get install ffmpeg)")?;
    let ts: Stdio = encoder.stdout.take().context("ffmpeg stdout")?.try_into()?;
    let url = format!(
        "srt://127.0.0.1:{}?streamid=#!::u=creator,r={key},m=publish,s=123",
        server.srt_port()
    );
    let transmit = Command::new("srt-live-transmit")
        .args(["-q", "file://con", &url])
        .stdin(ts)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("srt-live-transmit is required (apt-get install srt-tools)")?;
    let id = stream["id"].as_str().unwrap();
    let media = media_playlist(&stream);
    server.api.playlist_with_segments(&media, 1).await?;
    assert_plays(&media).await?;
    // srt-live-transmit keeps running at the end of its input; SIGINT makes it close the SRT
    // connection cleanly.
    let _ = encoder.wait().await;
    let pid = transmit.id().context("srt-live-transmit running")?;
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    let (_, stderr) = finish(transmit, DEADLINE).await?;
    let rec = server
        .api
        .recording_ready(&server.demo_token, id)
        .await
        .with_context(|| format!("srt-live-transmit: {stderr}"))?;
    let duration = rec["duration_s"].as_f64().unwrap_or(0.0);
    ensure!(duration >= 4.0, "recorded {duration} s of 5: {rec}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_second_publisher_and_garbage_udp_are_refused_and_the_server_keeps_serving()
-> Result<()> {
    let mut server = Server::start().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap();
    let port = server.srt_port();

    let wrong = format!("srt://127.0.0.1:{port}?streamid=publish:lf_not_a_key");
    let (status, _) = finish(ffmpeg_srt(2.0, &wrong)?, DEADLINE).await?;
    ensure!(!status.success(), "ffmpeg must fail with a wrong key");
    let player = format!("srt://127.0.0.1:{port}?streamid=#!::r=lf_not_a_key,m=request");
    let (status, _) = finish(ffmpeg_srt(2.0, &player)?, DEADLINE).await?;
    ensure!(!status.success(), "a caller asking to play is refused");
    ensure!(state(&server, id).await? == "ready", "no stream went live");
    ensure!(
        !server.data_dir().join("streams").exists(),
        "no files for refused callers"
    );

    // Garbage on the SRT port: random datagrams, empty ones, and truncated SRT control headers.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    udp.connect(("127.0.0.1", port)).await?;
    for i in 0..300u32 {
        let len = (i as usize * 37) % 1500;
        let mut junk: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
        if i % 3 == 0 && junk.len() >= 2 {
            junk[0] = 0x80; // control packet, type "handshake"
            junk[1] = 0x00;
        }
        udp.send(&junk).await?;
    }

    let url = server.srt_publish_url(&stream);
    let first = ffmpeg_srt(6.0, &url)?;
    let media = media_playlist(&stream);
    server.api.playlist_with_segments(&media, 1).await?;
    let (status, _) = finish(ffmpeg_srt(2.0, &url)?, DEADLINE).await?;
    ensure!(
        !status.success(),
        "a second simultaneous publisher is refused"
    );
    let (status, stderr) = finish(first, DEADLINE).await?;
    ensure!(status.success(), "the first publisher kept going: {stderr}");
    assert_plays(&media).await?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_passphrase_only_publishers_using_it_get_in() -> Result<()> {
    let mut server = Server::start_with(|c| c.srt.passphrase = Some(PASSPHRASE.into())).await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap();
    let url = server.srt_publish_url(&stream);

    let (status, _) = finish(ffmpeg_srt(2.0, &url)?, DEADLINE).await?;
    ensure!(
        !status.success(),
        "a publisher without the passphrase is refused"
    );
    let wrong = format!("{url}&passphrase=not-the-right-one&pbkeylen=16");
    let (status, _) = finish(ffmpeg_srt(2.0, &wrong)?, DEADLINE).await?;
    ensure!(!status.success(), "a wrong passphrase is refused");
    wait_for("the stream back to ready", DEADLINE, || async {
        (state(&server, id).await.ok()? == "ready").then_some(())
    })
    .await?;
    ensure!(
        !server
            .data_dir()
            .join("streams")
            .join(id)
            .join("hls")
            .exists(),
        "no pipeline for refused publishers"
    );

    let right = format!("{url}&passphrase={PASSPHRASE}&pbkeylen=32");
    let publisher = ffmpeg_srt(4.0, &right)?;
    let media = media_playlist(&stream);
    server.api.playlist_with_segments(&media, 1).await?;
    assert_plays(&media).await?;
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    ensure!(status.success(), "publisher with the passphrase: {stderr}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_the_stream_through_the_api_disconnects_the_srt_publisher() -> Result<()> {
    let mut server = Server::start().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap();
    let publisher = ffmpeg_srt(60.0, &server.srt_publish_url(&stream))?;
    server
        .api
        .playlist_with_segments(&media_playlist(&stream), 1)
        .await?;
    server.api.end_stream(&server.demo_token, id).await?;
    // The publisher is told (SRT shutdown) and gives up long before its 60 s of media.
    let (status, _) = finish(publisher, Duration::from_secs(20)).await?;
    ensure!(!status.success(), "ffmpeg reports the broken connection");
    server.api.recording_ready(&server.demo_token, id).await?;
    ensure!(state(&server, id).await? == "ended");
    server.stop().await;
    Ok(())
}

/// A UDP relay in front of the SRT port that drops every `nth` data packet from the publisher
/// (control packets pass). Returns the port to publish to; abort the task to stop it.
async fn lossy_relay(server_port: u16, nth: u64) -> Result<(u16, tokio::task::JoinHandle<()>)> {
    let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let back = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    back.connect(("127.0.0.1", server_port)).await?;
    let port = front.local_addr()?.port();
    let task = tokio::spawn(async move {
        let (mut up, mut down) = (vec![0u8; 2048], vec![0u8; 2048]);
        let (mut publisher, mut data_packets) = (None, 0u64);
        loop {
            tokio::select! {
                Ok((n, from)) = front.recv_from(&mut up) => {
                    publisher = Some(from);
                    let is_data = n > 0 && up[0] & 0x80 == 0;
                    data_packets += u64::from(is_data);
                    if !(is_data && data_packets % nth == 0) {
                        let _ = back.send(&up[..n]).await;
                    }
                }
                Ok(n) = back.recv(&mut down) => {
                    if let Some(to) = publisher {
                        let _ = front.send_to(&down[..n], to).await;
                    }
                }
            }
        }
    });
    Ok((port, task))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_loss_is_repaired_within_the_configured_latency_and_shows_in_health() -> Result<()> {
    let mut server = Server::start_with(|c| c.srt.latency = Duration::from_millis(250)).await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap();
    let (relay_port, relay) = lossy_relay(server.srt_port(), 25).await?;
    let url = server.srt_publish_url(&stream).replace(
        &format!(":{}?", server.srt_port()),
        &format!(":{relay_port}?"),
    );
    let publisher = ffmpeg_srt(5.0, &format!("{url}&linger=1"))?;
    let health = wait_for("retransmissions in health", DEADLINE, || async {
        let v = server.api.stream(&server.demo_token, id).await.ok()?;
        (v["health"]["srt"]["retransmitted_pkts"].as_u64()? > 0).then(|| v["health"].clone())
    })
    .await?;
    ensure!(health["srt"]["loss_pkts"].as_u64() > Some(0), "{health}");
    // ffmpeg asks for libsrt's default 120 ms; the larger, ours, wins.
    ensure!(health["srt"]["latency_ms"] == 250, "{health}");
    let media = media_playlist(&stream);
    server.api.playlist_with_segments(&media, 1).await?;
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    relay.abort();
    ensure!(
        status.success(),
        "publisher through the lossy link: {stderr}"
    );
    let rec = server.api.recording_ready(&server.demo_token, id).await?;
    let duration = rec["duration_s"].as_f64().unwrap_or(0.0);
    ensure!(
        duration > 4.5,
        "4 % loss repaired, {duration} s of 5 recorded"
    );
    assert_plays(&media.replace("index.m3u8", "event.m3u8")).await?;
    server.stop().await;
    Ok(())
}

// ---- the SRT server alone, with a recording `Publishers` -------------------------------------

const GOOD_KEY: &str = "good";

#[derive(Debug, Clone)]
enum Event {
    Frame(MediaFrame),
    Finished(EndReason),
}

type Events = Arc<Mutex<Vec<Event>>>;

/// Accepts [`GOOD_KEY`], refuses everything else.
struct TestPublishers {
    events: Events,
}

impl Publishers for TestPublishers {
    type Sink = TestSink;

    fn authorize(
        &self,
        key: &str,
        proto: Proto,
    ) -> impl Future<Output = Result<TestSink, Error>> + Send {
        assert_eq!(proto, Proto::Srt);
        std::future::ready(if key == GOOD_KEY {
            Ok(TestSink {
                events: Arc::clone(&self.events),
            })
        } else {
            Err(Error::BadStreamKey(redact(key)))
        })
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
}

impl MediaSink for TestSink {
    fn push(&mut self, frame: MediaFrame) -> Result<(), Error> {
        self.events.lock().unwrap().push(Event::Frame(frame));
        Ok(())
    }

    fn finish(self, reason: EndReason) {
        self.events.lock().unwrap().push(Event::Finished(reason));
    }

    fn ended(&self) -> impl Future<Output = ()> + Send + 'static {
        std::future::pending()
    }
}

struct Harness {
    port: u16,
    events: Events,
    shutdown: CancellationToken,
}

impl Harness {
    async fn start() -> Result<Harness> {
        Harness::start_with(SrtConfig::default()).await
    }

    async fn start_with(config: SrtConfig) -> Result<Harness> {
        init_logs();
        let server = SrtServer::bind("127.0.0.1:0".parse()?, config).await?;
        let port = server.local_addr().port();
        let events = Events::default();
        let shutdown = CancellationToken::new();
        tokio::spawn(server.run(
            Arc::new(TestPublishers {
                events: Arc::clone(&events),
            }),
            shutdown.clone(),
        ));
        Ok(Harness {
            port,
            events,
            shutdown,
        })
    }

    fn url(&self) -> String {
        format!("srt://127.0.0.1:{}?streamid=publish:{GOOD_KEY}", self.port)
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    async fn finished(&self) -> Result<EndReason> {
        wait_for("the publish to finish", DEADLINE, || async {
            self.events().into_iter().find_map(|e| match e {
                Event::Finished(r) => Some(r),
                Event::Frame(_) => None,
            })
        })
        .await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_becomes_ordered_frames_and_a_clean_close_is_a_stop() -> Result<()> {
    let h = Harness::start().await?;
    let (status, stderr) =
        finish(ffmpeg_srt(3.0, &format!("{}&linger=1", h.url()))?, DEADLINE).await?;
    ensure!(status.success(), "{stderr}");
    assert_eq!(h.finished().await?, EndReason::PublisherStopped);
    let events = h.events();
    let frames: Vec<&MediaFrame> = events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f),
            Event::Finished(_) => None,
        })
        .collect();
    let position = |pred: &dyn Fn(&MediaFrame) -> bool| frames.iter().position(|f| pred(f));
    let video_config =
        position(&|f| matches!(f, MediaFrame::VideoConfig { .. })).context("an avcC arrives")?;
    let audio_config = position(&|f| matches!(f, MediaFrame::AudioConfig { .. }))
        .context("an AudioSpecificConfig arrives")?;
    let first_video = position(&|f| matches!(f, MediaFrame::Video { .. })).context("video")?;
    let first_audio = position(&|f| matches!(f, MediaFrame::Audio { .. })).context("audio")?;
    ensure!(video_config < first_video && audio_config < first_audio);
    if let MediaFrame::VideoConfig { codec, record } = frames[video_config] {
        ensure!(*codec == livefront::ingest::VideoCodec::H264);
        let sps = livefront::ingest::avc::parse_avcc(record).context("avcC parses")?;
        ensure!((sps.width, sps.height) == (320, 240), "{sps:?}");
    }
    if let MediaFrame::AudioConfig { asc } = frames[audio_config] {
        // AAC-LC (object type 2), 48 kHz (index 3).
        ensure!(asc.len() >= 2 && asc[0] >> 3 == 2 && ((asc[0] & 7) << 1 | asc[1] >> 7) == 3);
    }
    let video: Vec<(u64, i32, bool, usize)> = frames
        .iter()
        .filter_map(|f| match f {
            MediaFrame::Video {
                dts_ms,
                cts_ms,
                keyframe,
                data,
            } => Some((*dts_ms, *cts_ms, *keyframe, data.len())),
            _ => None,
        })
        .collect();
    let audio: Vec<u64> = frames
        .iter()
        .filter_map(|f| match f {
            MediaFrame::Audio { dts_ms, .. } => Some(*dts_ms),
            _ => None,
        })
        .collect();
    ensure!(video[0].2, "the first access unit is a keyframe");
    ensure!(
        video.len() >= 85,
        "3 s at 30 fps, {} access units",
        video.len()
    );
    ensure!(video.windows(2).all(|w| w[1].0 > w[0].0), "video DTS grows");
    ensure!(video.iter().all(|v| v.1 >= 0), "PTS >= DTS");
    ensure!(video.iter().any(|v| v.1 > 0), "B-frames give PTS > DTS");
    ensure!(
        video.iter().filter(|v| v.2).count() == 2,
        "keyframes at 0 s and 2 s"
    );
    ensure!(audio.windows(2).all(|w| w[1] > w[0]), "audio DTS grows");
    let span = audio.last().unwrap() - audio[0];
    ensure!((2_700..=3_100).contains(&span), "audio spans {span} ms");
    // AVCC: the first NAL unit length fits in the access unit.
    if let Some(MediaFrame::Video { data, .. }) = frames.get(first_video) {
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        ensure!(len + 4 <= data.len(), "length-prefixed NAL units");
    }
    ensure!(
        frames.iter().any(|f| matches!(f, MediaFrame::SrtStats(_))),
        "statistics are sent"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_killed_mid_stream_is_reported_lost() -> Result<()> {
    let h = Harness::start().await?;
    let mut publisher = ffmpeg_srt(30.0, &h.url())?;
    wait_for("video frames", DEADLINE, || async {
        let n = h
            .events()
            .iter()
            .filter(|e| matches!(e, Event::Frame(MediaFrame::Video { .. })))
            .count();
        (n >= 30).then_some(())
    })
    .await?;
    publisher.start_kill()?; // SIGKILL: no SRT shutdown packet
    let _ = publisher.wait().await;
    match h.finished().await? {
        EndReason::PublisherLost(why) => ensure!(why.contains("connection lost"), "{why}"),
        other => bail!("expected PublisherLost, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_and_video_only_publishers_give_only_their_track() -> Result<()> {
    for (video, audio) in [(false, true), (true, false)] {
        let h = Harness::start().await?;
        let publish = Publish {
            video,
            audio,
            ..Publish::small(2.0)
        };
        let url = format!("{}&linger=1", h.url());
        let (status, stderr) = finish(publish.spawn_to("mpegts", &url)?, DEADLINE).await?;
        ensure!(status.success(), "{stderr}");
        assert_eq!(h.finished().await?, EndReason::PublisherStopped);
        let events = h.events();
        let has = |pred: &dyn Fn(&MediaFrame) -> bool| {
            events
                .iter()
                .any(|e| matches!(e, Event::Frame(f) if pred(f)))
        };
        ensure!(has(&|f| matches!(f, MediaFrame::Video { .. })) == video);
        ensure!(has(&|f| matches!(f, MediaFrame::VideoConfig { .. })) == video);
        ensure!(has(&|f| matches!(f, MediaFrame::Audio { .. })) == audio);
        ensure!(has(&|f| matches!(f, MediaFrame::AudioConfig { .. })) == audio);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_sending_no_usable_media_is_dropped_after_the_idle_timeout() -> Result<()> {
    let h = Harness::start_with(SrtConfig {
        idle_timeout: Duration::from_secs(2),
        ..SrtConfig::default()
    })
    .await?;
    // Random bytes over a healthy SRT connection: no transport stream, so no media.
    let mut noise = Command::new("head")
        .args(["-c", "400000", "/dev/urandom"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let bytes: Stdio = noise.stdout.take().context("head stdout")?.try_into()?;
    let mut transmit = Command::new("srt-live-transmit")
        .args(["-q", "-a:no", "file://con", &h.url()])
        .stdin(bytes)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("srt-live-transmit is required (apt-get install srt-tools)")?;
    let reason = h.finished().await?;
    let _ = transmit.start_kill();
    let _ = transmit.wait().await;
    let _ = noise.wait().await;
    match reason {
        EndReason::PublisherLost(why) => ensure!(why.contains("no media"), "{why}"),
        other => bail!("expected PublisherLost, got {other:?}"),
    }
    ensure!(
        !h.events().iter().any(|e| matches!(
            e,
            Event::Frame(MediaFrame::Video { .. } | MediaFrame::Audio { .. })
        )),
        "no media from noise"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_in_another_codec_is_dropped_and_the_rest_goes_through() -> Result<()> {
    let h = Harness::start().await?;
    // H.264 with MPEG-1 Layer II audio instead of AAC.
    let url = format!("{}&linger=1", h.url());
    let args: Vec<String> = Publish::small(2.0)
        .args_to("mpegts", &url)
        .into_iter()
        .map(|a| if a == "aac" { "mp2".to_string() } else { a })
        .collect();
    let publisher = Command::new("ffmpeg")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    ensure!(status.success(), "{stderr}");
    assert_eq!(h.finished().await?, EndReason::PublisherStopped);
    let events = h.events();
    let count = |pred: &dyn Fn(&MediaFrame) -> bool| {
        events
            .iter()
            .filter(|e| matches!(e, Event::Frame(f) if pred(f)))
            .count()
    };
    ensure!(count(&|f| matches!(f, MediaFrame::Video { .. })) >= 55);
    ensure!(
        count(&|f| matches!(f, MediaFrame::Audio { .. } | MediaFrame::AudioConfig { .. })) == 0
    );
    Ok(())
}

/// Sends `ts` over SRT (srt-tokio as the caller) in 1316-byte messages, then closes.
async fn srt_send(port: u16, key: &str, ts: &[u8]) -> Result<()> {
    use futures_util::SinkExt;
    let stream_id = format!("publish:{key}");
    let mut socket = srt_tokio::SrtSocket::builder()
        .latency(Duration::from_millis(120))
        .call(format!("127.0.0.1:{port}").as_str(), Some(&stream_id))
        .await?;
    for message in ts.chunks(1316) {
        socket
            .send((
                std::time::Instant::now(),
                bytes::Bytes::copy_from_slice(message),
            ))
            .await?;
    }
    socket.close().await?;
    Ok(())
}

/// Transport streams the `srt_mpegts` fuzzing harness found (tests/fuzz.rs): after the publisher
/// left, their streams stayed live for good (nothing finalised them, and the server's stop waited
/// for them until its grace ran out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mangled_transport_streams_over_srt_do_not_leave_their_streams_live() -> Result<()> {
    let mut server =
        Server::start_with(|c| c.ingest.reconnect_grace = Duration::from_millis(100)).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    for i in 0..3 {
        let path = format!(
            "{}/tests/fuzzing/regressions/srt-mpegts-stuck-live-{i}.ts",
            env!("CARGO_MANIFEST_DIR")
        );
        let ts = std::fs::read(&path).with_context(|| path.clone())?;
        let v = api.create_stream(&token, "mangled").await?;
        let id = v["id"].as_str().context("id")?.to_string();
        let key = v["stream_key"].as_str().context("key")?.to_string();
        srt_send(server.srt_port(), &key, &ts).await?;
        wait_for(&format!("{path}: the stream over"), DEADLINE, || async {
            let v = api.stream(&token, &id).await.ok()?;
            (v["health"].is_null() && v["state"] != "live").then_some(())
        })
        .await?;
    }
    assert_eq!(api.status("/api/v1/home", None).await?, 200);
    server.stop().await;
    Ok(())
}
