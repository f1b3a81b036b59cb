//! Soak client (run by `bench/soak.sh`): HLS viewers following the live playlists of several
//! public streams of a running livefront, fetching every new segment, plus live-channel
//! WebSocket sockets on the same streams with some chat, for a while; then Markdown figures.
//!
//! `soak BASE_URL CREATOR_TOKEN SERVER_PID ID[,ID...]`; knobs in the environment: `VIEWERS`
//! (1000), `SOCKETS` (1000), `DURATION_S` (600), `CHAT_EVERY_S` (2: one message per stream this
//! often, over the creator's socket), `POLL_MS` (1000: playlist reload), `CLK_TCK` (100).
//!
//! Counted as errors: a playlist or segment request that fails or answers other than 200
//! (a listed segment answering 404 counts as missing instead), a socket that cannot connect or
//! is closed by the server, a chat message that cannot be sent. Missing segments: a viewer whose
//! next playlist starts past the segment it expected next (a media-sequence gap), or a listed
//! segment that answers 404.
#[path = "support/procfs.rs"]
mod procfs;
#[path = "support/ws.rs"]
mod ws;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Concurrent WebSocket handshakes while connecting.
const CONNECT_PARALLEL: usize = 50;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib(pid: &str) -> Result<f64> {
    Ok(procfs::rss_kib(pid)? as f64 / 1024.0)
}

/// The anonymous part of the resident size (heap, stacks): what grows if memory is kept.
fn anon_mib(pid: &str) -> Result<f64> {
    Ok(procfs::status_kib(pid, "RssAnon")? as f64 / 1024.0)
}

fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

#[derive(Default)]
struct Totals {
    playlist_requests: AtomicU64,
    segment_requests: AtomicU64,
    segment_bytes: AtomicU64,
    errors: AtomicU64,
    missing: AtomicU64,
    gaps: AtomicU64,
    not_found: AtomicU64,
    ws_dropped: AtomicU64,
    ws_connect_failed: AtomicU64,
    chat_sent: AtomicU64,
    chat_received: AtomicU64,
    /// Chat deliveries expected: each message sent × sockets on its stream then.
    chat_expected: AtomicU64,
    /// Playlist response times (µs).
    latencies: Mutex<Vec<u32>>,
    /// The first few errors, for the report.
    first_errors: Mutex<Vec<String>>,
}

impl Totals {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 10 {
            first.push(what);
        }
    }
}

/// Media sequence number and segment URIs of a media playlist.
fn parse_playlist(text: &str) -> Option<(u64, Vec<String>)> {
    let mut msn = 0;
    let mut uris = Vec::new();
    if !text.starts_with("#EXTM3U") {
        return None;
    }
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = n.trim().parse().ok()?;
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            uris.push(line.trim().to_string());
        }
    }
    Some((msn, uris))
}

/// One HLS viewer following `playlist` until `until`, starting three segments from the edge as
/// players do, and fetching each new segment once.
async fn viewer(http: reqwest::Client, playlist: String, until: Instant, totals: Arc<Totals>) {
    let poll = Duration::from_millis(env("POLL_MS", 1000));
    let base = playlist.rsplit_once('/').map_or("", |(b, _)| b).to_string();
    let mut next: Option<u64> = None;
    let mut latencies = Vec::new();
    // Spread the viewers over a poll interval.
    tokio::time::sleep(poll.mul_f64(rand::random::<f64>())).await;
    while Instant::now() < until {
        let started = Instant::now();
        let resp = http.get(&playlist).send().await;
        let text = match resp {
            Ok(r) if r.status() == 200 => r.text().await.ok(),
            Ok(r) => {
                totals.error(format!("playlist {playlist}: {}", r.status()));
                None
            }
            Err(e) => {
                totals.error(format!("playlist {playlist}: {e}"));
                None
            }
        };
        latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
        totals.playlist_requests.fetch_add(1, Ordering::Relaxed);
        if let Some((msn, uris)) = text.as_deref().and_then(parse_playlist) {
            let last = msn + uris.len() as u64;
            let from = match next {
                None => msn.max(last.saturating_sub(3)),
                Some(n) if n < msn => {
                    totals.gaps.fetch_add(1, Ordering::Relaxed);
                    totals.missing.fetch_add(msn - n, Ordering::Relaxed);
                    msn
                }
                Some(n) => n,
            };
            for seq in from..last {
                let uri = &uris[(seq - msn) as usize];
                let url = if uri.starts_with("http") {
                    uri.clone()
                } else {
                    format!("{base}/{uri}")
                };
                totals.segment_requests.fetch_add(1, Ordering::Relaxed);
                match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => match r.bytes().await {
                        Ok(b) => {
                            totals
                                .segment_bytes
                                .fetch_add(b.len() as u64, Ordering::Relaxed);
                        }
                        Err(e) => totals.error(format!("segment {url}: {e}")),
                    },
                    Ok(r) if r.status() == 404 => {
                        totals.not_found.fetch_add(1, Ordering::Relaxed);
                        totals.missing.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => totals.error(format!("segment {url}: {}", r.status())),
                    Err(e) => totals.error(format!("segment {url}: {e}")),
                }
            }
            next = Some(last.max(next.unwrap_or(0)));
        }
        let spent = started.elapsed();
        if spent < poll {
            tokio::time::sleep(poll - spent).await;
        }
    }
    totals.latencies.lock().unwrap().extend(latencies);
}

/// One live-channel socket: counts chat messages of this run until `until`.
async fn socket(
    url: String,
    until: Instant,
    totals: Arc<Totals>,
    limit: Arc<tokio::sync::Semaphore>,
    connected: Arc<AtomicU64>,
) {
    let permit = limit.acquire_owned().await;
    let ws = ws::connect(&url, None).await;
    drop(permit);
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            totals.ws_connect_failed.fetch_add(1, Ordering::Relaxed);
            totals.error(format!("socket {url}: {e:#}"));
            return;
        }
    };
    connected.fetch_add(1, Ordering::Relaxed);
    let deadline = tokio::time::Instant::from_std(until);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Text(t)))) => {
                if t.as_str().contains("\"soak:") {
                    totals.chat_received.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => {
                totals.ws_dropped.fetch_add(1, Ordering::Relaxed);
                totals.error(format!("socket {url}: closed by the server"));
                connected.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    let _ = ws.close(None).await;
}

/// The creator's socket on one stream: a chat message every `every`.
async fn chatter(
    url: String,
    token: String,
    every: Duration,
    until: Instant,
    totals: Arc<Totals>,
    listeners: Arc<AtomicU64>,
) {
    let ws = match ws::connect(&url, Some(&token)).await {
        Ok(ws) => ws,
        Err(e) => {
            totals.error(format!("chat sender {url}: {e:#}"));
            return;
        }
    };
    let (mut tx, mut rx) = ws.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n = 0u64;
    // Stop a few seconds early so the last messages arrive before the sockets close.
    while Instant::now() + Duration::from_secs(3) < until {
        tick.tick().await;
        let text = format!("soak:{n} a short chat line as viewers write them");
        let msg = serde_json::json!({"type": "chat_message", "text": text}).to_string();
        let expected = listeners.load(Ordering::Relaxed);
        match tx.send(Message::text(msg)).await {
            Ok(()) => {
                totals.chat_sent.fetch_add(1, Ordering::Relaxed);
                totals.chat_expected.fetch_add(expected, Ordering::Relaxed);
            }
            Err(e) => {
                totals.error(format!("chat send {url}: {e}"));
                break;
            }
        }
        n += 1;
    }
    drain.abort();
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, token, pid, ids] = args.as_slice() else {
        bail!("usage: soak BASE_URL CREATOR_TOKEN SERVER_PID ID[,ID...]");
    };
    let ids: Vec<&str> = ids.split(',').filter(|s| !s.is_empty()).collect();
    anyhow::ensure!(!ids.is_empty(), "no stream ids");
    let viewers: usize = env("VIEWERS", 1000);
    let sockets: usize = env("SOCKETS", 1000);
    let duration = Duration::from_secs(env("DURATION_S", 600));
    let chat_every = Duration::from_secs_f64(env("CHAT_EVERY_S", 2.0));
    let clk_tck: f64 = env("CLK_TCK", 100.0);
    let base = base.trim_end_matches('/').to_string();
    let ws_base = base.replacen("http://", "ws://", 1);

    let rss_start = rss_mib(pid)?;
    let anon_start = anon_mib(pid)?;
    let (cpu0, t0) = (procfs::cpu_s(pid, clk_tck)?, Instant::now());
    let self0 = procfs::cpu_s("self", clk_tck)?;
    let until = t0 + duration;
    let totals = Arc::new(Totals::default());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(viewers + 16)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut tasks = tokio::task::JoinSet::new();

    // Sockets first (each stream's share), then the chat senders, then the viewers.
    let limit = Arc::new(tokio::sync::Semaphore::new(CONNECT_PARALLEL));
    let per_stream: Vec<Arc<AtomicU64>> = ids.iter().map(|_| Arc::default()).collect();
    for i in 0..sockets {
        let s = i % ids.len();
        let url = format!("{ws_base}/api/v1/streams/{}/live", ids[s]);
        tasks.spawn(socket(
            url,
            until,
            totals.clone(),
            limit.clone(),
            per_stream[s].clone(),
        ));
    }
    let want: u64 = sockets as u64;
    let connect_start = Instant::now();
    while per_stream
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum::<u64>()
        + totals.ws_connect_failed.load(Ordering::Relaxed)
        < want
        && connect_start.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sockets_connected: u64 = per_stream.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let connect_s = connect_start.elapsed().as_secs_f64();
    for (s, id) in ids.iter().enumerate() {
        let url = format!("{ws_base}/api/v1/streams/{id}/live");
        tasks.spawn(chatter(
            url,
            token.clone(),
            chat_every,
            until,
            totals.clone(),
            per_stream[s].clone(),
        ));
    }
    for i in 0..viewers {
        let playlist = format!("{base}/hls/{}/source/index.m3u8", ids[i % ids.len()]);
        tasks.spawn(viewer(http.clone(), playlist, until, totals.clone()));
    }
    eprintln!(
        "soak: {sockets_connected} sockets in {connect_s:.1} s, {viewers} viewers on {} streams, for {} s",
        ids.len(),
        duration.as_secs()
    );

    // RSS in the middle; progress every minute.
    let mut rss_middle = None;
    let mut rss_max = rss_start;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(5).min(until - Instant::now())).await;
        let rss = rss_mib(pid).context("the server exited")?;
        rss_max = rss_max.max(rss);
        if rss_middle.is_none() && t0.elapsed() >= duration / 2 {
            rss_middle = Some(rss);
        }
        let secs = t0.elapsed().as_secs();
        if secs % 60 < 5 {
            eprintln!(
                "soak: {secs} s, RSS {rss:.1} MiB (anonymous {:.1}), {} playlist + {} segment requests, {} errors, {} missing",
                anon_mib(pid).unwrap_or(f64::NAN),
                totals.playlist_requests.load(Ordering::Relaxed),
                totals.segment_requests.load(Ordering::Relaxed),
                totals.errors.load(Ordering::Relaxed),
                totals.missing.load(Ordering::Relaxed)
            );
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let server_cores = (procfs::cpu_s(pid, clk_tck)? - cpu0) / elapsed;
    let rss_end = rss_mib(pid)?;
    let anon_end = anon_mib(pid)?;
    // Let the tasks finish what they are doing (a segment download, a last read).
    let drain = tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drain.is_err() {
        tasks.abort_all();
    }
    let self_cores = (procfs::cpu_s("self", clk_tck)? - self0) / t0.elapsed().as_secs_f64();
    let mut latencies = std::mem::take(&mut *totals.latencies.lock().unwrap());
    latencies.sort_unstable();
    let t = &totals;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "| errors | segments missing (gaps / 404) | playlist requests | p50 / p99 playlist ms | segments fetched | RSS start / middle / end (max) MiB | anonymous RSS start / end MiB | server cores | soak client cores | sockets | chat delivered |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} ({} gaps, {} 404) | {} | {:.1} / {:.1} | {} ({:.0} MiB) | {:.1} / {:.1} / {:.1} ({:.1}) | {:.1} / {:.1} | {:.2} | {:.2} | {} of {} ({} dropped) | {} of {} |",
        get(&t.errors),
        get(&t.missing),
        get(&t.gaps),
        get(&t.not_found),
        get(&t.playlist_requests),
        percentile_ms(&latencies, 0.5),
        percentile_ms(&latencies, 0.99),
        get(&t.segment_requests),
        get(&t.segment_bytes) as f64 / 1048576.0,
        rss_start,
        rss_middle.unwrap_or(f64::NAN),
        rss_end,
        rss_max,
        anon_start,
        anon_end,
        server_cores,
        self_cores,
        sockets_connected,
        sockets,
        get(&t.ws_dropped),
        get(&t.chat_received),
        get(&t.chat_expected),
    );
    for e in t.first_errors.lock().unwrap().iter() {
        println!("- error: {e}");
    }
    Ok(())
}
