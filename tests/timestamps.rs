//! Publisher timestamp edge cases: a small RTMP publisher (rml_rtmp's client session over a real
//! socket) re-sends real ffmpeg FLV tags (x264 with B-frames, AAC) with chosen timestamps. Each
//! case has a defined outcome — the stream stays live to the end, plays as HLS with both tracks
//! and leaves a ready recording — never a panic, a disconnected publisher or a silent end.
mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use common::*;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Seconds of source media.
const SECONDS: f64 = 4.0;

/// One FLV tag: video (9) or audio (8), its timestamp (ms) and body.
#[derive(Clone, Debug)]
struct Tag {
    video: bool,
    ts: u32,
    body: Vec<u8>,
}

impl Tag {
    fn is_header(&self) -> bool {
        self.body.get(1) == Some(&0)
    }
    fn is_keyframe(&self) -> bool {
        self.video && self.body.first().is_some_and(|b| b >> 4 == 1) && !self.is_header()
    }
    fn set_cts(&mut self, cts: i32) {
        let b = cts.to_be_bytes();
        self.body[2..5].copy_from_slice(&b[1..4]);
    }
}

/// Small x264 (B-frames, 1 s GOP) + AAC as FLV tags, from ffmpeg.
async fn source_tags() -> Result<Vec<Tag>> {
    let publish = Publish {
        gop: 30,
        ..Publish::small(SECONDS)
    };
    let mut args = publish.args_to("flv", "-");
    args.retain(|a| a != "-re");
    let out = run(
        "ffmpeg",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        DEADLINE,
    )
    .await?;
    ensure!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = out.stdout;
    let mut tags = Vec::new();
    let mut off = 13;
    while off + 11 <= d.len() {
        let kind = d[off];
        let size = u32::from_be_bytes([0, d[off + 1], d[off + 2], d[off + 3]]) as usize;
        let ts = u32::from_be_bytes([d[off + 7], d[off + 4], d[off + 5], d[off + 6]]);
        let body = d.get(off + 11..off + 11 + size).context("truncated flv")?;
        if kind == 8 || kind == 9 {
            tags.push(Tag {
                video: kind == 9,
                ts,
                body: body.to_vec(),
            });
        }
        off += 11 + size + 4;
    }
    ensure!(tags.len() > 200, "{} tags", tags.len());
    Ok(tags)
}

/// Reads from the server until `wanted` is raised, sending what the session answers.
async fn until_event(
    sock: &mut TcpStream,
    session: &mut ClientSession,
    wanted: fn(&ClientSessionEvent) -> bool,
) -> Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::time::timeout(DEADLINE, sock.read(&mut buf)).await??;
        ensure!(n > 0, "server closed the connection during setup");
        // Every packet the session produced goes out, in order, before this returns.
        let mut seen = false;
        for result in session.handle_input(&buf[..n])? {
            match result {
                ClientSessionResult::OutboundResponse(p) => sock.write_all(&p.bytes).await?,
                ClientSessionResult::RaisedEvent(e) if wanted(&e) => seen = true,
                ClientSessionResult::RaisedEvent(
                    e @ ClientSessionEvent::ConnectionRequestRejected { .. },
                ) => bail!("refused: {e:?}"),
                _ => {}
            }
        }
        if seen {
            return Ok(());
        }
    }
}

/// Publishes `tags` to `rtmp://127.0.0.1:port/live/key` in real time (paced by `pace_ms`, the
/// source's own clock), then unpublishes. An error means the server dropped the publisher.
async fn publish(port: u16, key: &str, tags: Vec<(Tag, u32)>) -> Result<()> {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut handshake = Handshake::new(PeerType::Client);
    sock.write_all(&handshake.generate_outbound_p0_and_p1()?)
        .await?;
    let mut buf = vec![0u8; 16 * 1024];
    let remaining = loop {
        let n = tokio::time::timeout(DEADLINE, sock.read(&mut buf)).await??;
        ensure!(n > 0, "server closed during the handshake");
        match handshake.process_bytes(&buf[..n])? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).await?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    let (mut session, _) = ClientSession::new(ClientSessionConfig::new())?;
    if !remaining.is_empty() {
        for r in session.handle_input(&remaining)? {
            if let ClientSessionResult::OutboundResponse(p) = r {
                sock.write_all(&p.bytes).await?;
            }
        }
    }
    if let ClientSessionResult::OutboundResponse(p) = session.request_connection("live".into())? {
        sock.write_all(&p.bytes).await?;
    }
    until_event(&mut sock, &mut session, |e| {
        matches!(e, ClientSessionEvent::ConnectionRequestAccepted)
    })
    .await?;
    if let ClientSessionResult::OutboundResponse(p) =
        session.request_publishing(key.into(), PublishRequestType::Live)?
    {
        sock.write_all(&p.bytes).await?;
    }
    until_event(&mut sock, &mut session, |e| {
        matches!(e, ClientSessionEvent::PublishRequestAccepted)
    })
    .await?;
    let start = Instant::now();
    for (tag, pace_ms) in tags {
        tokio::time::sleep_until(start + Duration::from_millis(pace_ms.into())).await;
        let ts = RtmpTimestamp::new(tag.ts);
        let data = Bytes::from(tag.body);
        let packet = if tag.video {
            session.publish_video_data(data, ts, false)?
        } else {
            session.publish_audio_data(data, ts, false)?
        };
        if let ClientSessionResult::OutboundResponse(p) = packet {
            sock.write_all(&p.bytes)
                .await
                .context("the server dropped the publisher")?;
        }
    }
    for r in session.stop_publishing()? {
        if let ClientSessionResult::OutboundResponse(p) = r {
            sock.write_all(&p.bytes).await?;
        }
    }
    sock.shutdown().await?;
    Ok(())
}

/// A case: how the publisher's timestamps are changed, and the least recording it must leave.
struct Case {
    name: &'static str,
    change: fn(&mut Vec<Tag>),
    min_recorded_s: f64,
}

const CASES: &[Case] = &[
    Case {
        // Every third video frame repeats the previous frame's DTS and PTS (gst flvmux).
        name: "equal consecutive dts",
        change: |tags| {
            let mut last = None;
            let mut n = 0;
            for t in tags.iter_mut().filter(|t| t.video && !t.is_header()) {
                n += 1;
                if let Some(ts) = last
                    && n % 3 == 0
                {
                    t.ts = ts;
                    t.set_cts(0);
                }
                last = Some(t.ts);
            }
        },
        min_recorded_s: SECONDS - 0.5,
    },
    Case {
        // Composition offsets below zero (PTS before DTS).
        name: "negative composition offsets",
        change: |tags| {
            for (i, t) in tags
                .iter_mut()
                .filter(|t| t.video && !t.is_header())
                .enumerate()
            {
                if i % 4 == 1 {
                    t.set_cts(-40);
                }
            }
        },
        min_recorded_s: SECONDS - 0.5,
    },
    Case {
        // Both tracks step back 300 ms once, 2 s in.
        name: "a step back",
        change: |tags| shift_after(tags, 2000, |ts| ts - 300),
        min_recorded_s: SECONDS - 0.8,
    },
    Case {
        // The encoder's clock restarts at 0, 2 s in (no reconnect).
        name: "clock restart",
        change: |tags| shift_after(tags, 2000, |ts| ts - 2000),
        min_recorded_s: SECONDS - 0.8,
    },
    Case {
        // An encoder that paused: timestamps jump 5 s ahead, 2 s in; the gap stays.
        name: "forward jump",
        change: |tags| shift_after(tags, 2000, |ts| ts + 5000),
        min_recorded_s: SECONDS + 4.5,
    },
    Case {
        // 32-bit wrap: starts 2 s before 2^32 ms, so the extended timestamps wrap to 0 mid-stream.
        name: "32-bit wrap",
        change: |tags| {
            for t in tags.iter_mut() {
                t.ts = t.ts.wrapping_add(u32::MAX - 1999);
            }
        },
        min_recorded_s: SECONDS - 0.5,
    },
    Case {
        // The first picture is not a keyframe: video starts at the next keyframe (1 s in).
        name: "first video frame not a keyframe",
        change: |tags| {
            if let Some(i) = tags.iter().position(Tag::is_keyframe) {
                tags.remove(i);
            }
        },
        min_recorded_s: SECONDS - 1.5,
    },
    Case {
        // Audio stamped 2 s ahead of the video it goes with.
        name: "audio far ahead of video",
        change: |tags| {
            for t in tags.iter_mut().filter(|t| !t.video && !t.is_header()) {
                t.ts += 2000;
            }
        },
        min_recorded_s: SECONDS - 1.0,
    },
];

/// Moves every media tag stamped at or after `from_ms` (headers stay).
fn shift_after(tags: &mut [Tag], from_ms: u32, f: fn(u32) -> u32) {
    for t in tags
        .iter_mut()
        .filter(|t| !t.is_header() && t.ts >= from_ms)
    {
        t.ts = f(t.ts);
    }
}

async fn run_case(server: &Server, source: &[Tag], case: &Case) -> Result<()> {
    let token = &server.demo_token;
    let stream = server.api.create_stream(token, case.name).await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    let key = stream["stream_key"].as_str().context("key")?.to_string();
    let mut tags = source.to_vec();
    // Paced on the source's clock, whatever the case does to the timestamps.
    let pace: Vec<u32> = tags.iter().map(|t| t.ts).collect();
    (case.change)(&mut tags);
    let paced: Vec<(Tag, u32)> = if tags.len() == pace.len() {
        tags.into_iter().zip(pace).collect()
    } else {
        tags.into_iter()
            .map(|t| (t.clone(), t.ts.min(10_000)))
            .collect()
    };
    publish(server.rtmp_port(), &key, paced)
        .await
        .context("publish")?;
    let rec = server.api.recording_ready(token, &id).await?;
    let recorded = rec["duration_s"].as_f64().unwrap_or(0.0);
    ensure!(
        recorded >= case.min_recorded_s,
        "recorded {recorded} s: {rec}"
    );
    let ended = server.api.stream(token, &id).await?;
    ensure!(ended["state"] == "ended", "{ended}");
    let master = stream["playback"]["hls"]
        .as_str()
        .context("playback")?
        .replace("localhost", "127.0.0.1");
    let (codecs, _) = probe(&master).await?;
    ensure!(codecs == ["h264", "aac"], "HLS has {codecs:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_timestamp_edge_cases_each_have_a_defined_outcome() -> Result<()> {
    let mut server = Server::start().await?;
    let source = source_tags().await?;
    // All cases at once, each on its own stream (they are paced in real time).
    let runs =
        futures_util::future::join_all(CASES.iter().map(|case| run_case(&server, &source, case)))
            .await;
    let failed: Vec<String> = CASES
        .iter()
        .zip(runs)
        .filter_map(|(case, r)| r.err().map(|e| format!("{}: {e:#}", case.name)))
        .collect();
    server.stop().await;
    ensure!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(())
}
