//! Live-channel benchmark client (run by `bench/ws.sh`): opens many WebSocket viewers on one
//! stream of a running livefront, measures the server's memory and CPU with them idle, then has
//! one sender post chat messages at increasing rates and measures what reaches the viewers.
//!
//! `ws_fanout BASE_URL STREAM_ID SENDER_TOKEN SERVER_PID`, knobs in the environment: `CLIENTS`
//! (1000), `IDLE_S` (30), `RATES` ("20 50 100 200 400 800"), `PHASE_S` (5), `CLK_TCK` (100).
//! Prints Markdown. The sender needs `chat.rate_messages` raised on the server.
#[path = "support/procfs.rs"]
mod procfs;
#[path = "support/ws.rs"]
mod ws;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Concurrent handshakes while connecting the viewers.
const CONNECT_PARALLEL: usize = 50;
/// After a phase's last send, how long to wait for stragglers.
const DRAIN: Duration = Duration::from_secs(3);
/// Chat text after the benchmark's header, so an event is ~190 bytes like a short real message.
const PADDING: &str = "the quick brown fox jumps over the lazy dog";

static BASE: OnceLock<Instant> = OnceLock::new();

fn now_us() -> u64 {
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one viewer received: (phase, latency µs) per benchmark message, and whether it ended.
#[derive(Default)]
struct Viewer {
    samples: Mutex<Vec<(u32, u32)>>,
    closed: AtomicBool,
}

/// `"text":"b:PHASE:SENT_US:…"` inside a `chat_message` event.
fn parse(event: &str) -> Option<(u32, u64)> {
    let at = event.find(r#""text":"b:"#)? + r#""text":"b:"#.len();
    let mut parts = event[at..].splitn(3, ':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, stream, token, pid] = args.as_slice() else {
        bail!("usage: ws_fanout BASE_URL STREAM_ID SENDER_TOKEN SERVER_PID");
    };
    let clients: usize = env("CLIENTS", 1000);
    let idle = Duration::from_secs(env("IDLE_S", 30));
    let phase_len = Duration::from_secs(env("PHASE_S", 5));
    let clk_tck: f64 = env("CLK_TCK", 100.0);
    let rates: Vec<f64> = std::env::var("RATES")
        .unwrap_or_else(|_| "20 50 100 200 400 800".into())
        .split_whitespace()
        .map(|r| r.parse())
        .collect::<Result<_, _>>()?;
    let url = format!(
        "{}/api/v1/streams/{stream}/live",
        base.replacen("http://", "ws://", 1)
    );
    now_us();

    // 1. Idle viewers.
    let rss0 = procfs::rss_kib(pid)?;
    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(CONNECT_PARALLEL));
    let connected = Arc::new(AtomicUsize::new(0));
    let mut viewers = Vec::with_capacity(clients);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let viewer = Arc::new(Viewer::default());
        viewers.push(viewer.clone());
        let (url, limit, connected) = (url.clone(), limit.clone(), connected.clone());
        tasks.spawn(async move {
            let permit = limit.acquire_owned().await?;
            let mut ws = ws::connect(&url, None).await?;
            drop(permit);
            connected.fetch_add(1, Ordering::Relaxed);
            while let Some(frame) = ws.next().await {
                match frame {
                    Ok(Message::Text(t)) => {
                        if let Some((phase, sent)) = parse(t.as_str()) {
                            let latency = now_us().saturating_sub(sent).min(u32::MAX as u64);
                            viewer.samples.lock().unwrap().push((phase, latency as u32));
                        }
                    }
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            viewer.closed.store(true, Ordering::Relaxed);
            anyhow::Ok(())
        });
    }
    while connected.load(Ordering::Relaxed) < clients {
        if let Some(Ok(Err(e))) = tasks.try_join_next() {
            bail!("a viewer failed to connect: {e:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_s = started.elapsed().as_secs_f64();
    // Let the greeting and the viewer_count events settle.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rss1 = procfs::rss_kib(pid)?;
    let (cpu0, t0) = (procfs::cpu_s(pid, clk_tck)?, Instant::now());
    tokio::time::sleep(idle).await;
    let idle_cores = (procfs::cpu_s(pid, clk_tck)? - cpu0) / t0.elapsed().as_secs_f64();
    let rss2 = procfs::rss_kib(pid)?;
    println!("- {clients} viewers connected in {connect_s:.1} s");
    println!(
        "- server RSS: {:.1} MiB before, {:.1} MiB with {clients} idle viewers (+{:.1} MiB, {:.1} KiB per viewer), {:.1} MiB after {} s idle",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        (rss1 as f64 - rss0 as f64) / 1024.0,
        (rss1 as f64 - rss0 as f64) / clients as f64,
        rss2 as f64 / 1024.0,
        idle.as_secs()
    );
    println!(
        "- server CPU with {clients} idle viewers over {} s: {:.2} % of one core",
        idle.as_secs(),
        idle_cores * 100.0
    );

    // 2. Fan-out at increasing rates.
    let sender = ws::connect(&url, Some(token)).await?;
    let (mut tx, mut rx) = sender.split();
    let drain_sender = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    println!();
    println!(
        "| rate asked (msg/s) | sent/s | viewers | delivered | delivered/s | latency p50 ms | p99 ms | max ms | server cores | bench client cores | viewers dropped |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (phase, rate) in rates.iter().enumerate() {
        let phase = phase as u32;
        let alive = viewers
            .iter()
            .filter(|v| !v.closed.load(Ordering::Relaxed))
            .count();
        let (cpu0, self0) = (
            procfs::cpu_s(pid, clk_tck)?,
            procfs::cpu_s("self", clk_tck)?,
        );
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut sent = 0u64;
        while start.elapsed() < phase_len {
            tick.tick().await;
            let text = format!("b:{phase}:{}:{sent}:{PADDING}", now_us());
            let msg = serde_json::json!({"type": "chat_message", "text": text}).to_string();
            tx.send(Message::text(msg)).await?;
            sent += 1;
        }
        let send_s = start.elapsed().as_secs_f64();
        let expected = sent as usize * alive;
        let deadline = Instant::now() + DRAIN;
        let mut latencies: Vec<u32> = Vec::with_capacity(expected);
        loop {
            let got: usize = viewers
                .iter()
                .map(|v| {
                    v.samples
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(p, _)| *p == phase)
                        .count()
                })
                .sum();
            if got >= expected || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        for v in &viewers {
            let mut samples = v.samples.lock().unwrap();
            latencies.extend(samples.iter().filter(|(p, _)| *p == phase).map(|(_, l)| *l));
            samples.clear();
        }
        let cores = (procfs::cpu_s(pid, clk_tck)? - cpu0) / elapsed;
        let self_cores = (procfs::cpu_s("self", clk_tck)? - self0) / elapsed;
        latencies.sort_unstable();
        let delivered = latencies.len();
        // Delivery time: the last message's send time plus its latency bounds the work.
        let busy_s =
            send_s.max(elapsed.min(send_s + latencies.last().map_or(0.0, |l| *l as f64 / 1e6)));
        let dropped = alive
            - viewers
                .iter()
                .filter(|v| !v.closed.load(Ordering::Relaxed))
                .count();
        println!(
            "| {rate} | {:.0} | {alive} | {delivered} of {expected} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {dropped} |",
            sent as f64 / send_s,
            delivered as f64 / busy_s,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
            cores,
            self_cores,
        );
        if dropped > 0 || delivered < expected {
            println!();
            println!("(stopped: viewers could not keep up at {rate} msg/s)");
            break;
        }
    }
    drain_sender.abort();
    tasks.abort_all();
    Ok(())
}
