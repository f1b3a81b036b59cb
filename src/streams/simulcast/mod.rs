//! Simulcast, the stream owner's side: which of a live stream's destinations get its media, and
//! the life of each target. Only public media goes out: a target runs while the stream has a
//! pipeline, is public and not ending, and the destination is chosen and enabled; switching to
//! practice, deselecting it or the end stops it at once.
//!
//! One task per live stream ([`run`]) owns every target: it attaches and detaches them
//! (`pipeline::target`), retries a failed one with capped exponential backoff while it should
//! run, measures bytes and bitrate, and reports each change of state through `emit` (a stream
//! event: live channel, webhooks). Everyone else only wakes it ([`Simulcast`]).
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use gstreamer as gst;
use gstreamer::prelude::*;

pub mod status;

use status::lock;
pub use status::{Simulcast, TargetState, TargetStatus, stopped};

use super::stream::LiveStream;
use crate::config::SimulcastConfig;
use crate::pipeline::target::{self, Attached, Sink, TargetSpec};
use crate::store::destinations::{DestinationError, Protocol};
use crate::store::sealed::SecretBox;
use crate::store::{Destination, Mode};

/// Without news, targets are looked at (bytes, bitrate, due retries) this often.
const TICK: Duration = Duration::from_secs(1);
/// Bytes on the wire after which a target counts as live (the RTMP handshake, connect and
/// metadata are a few kB less).
const LIVE_BYTES: u64 = 32 * 1024;
/// A target still connecting after this (a receiver that accepts but never takes the stream) is
/// given up on and retried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the task needs besides the stream.
pub struct Context {
    pub config: SimulcastConfig,
    pub secrets: SecretBox,
    /// Tells of a target's change of state (a stream event).
    pub emit: Box<dyn Fn(TargetStatus) + Send + Sync>,
}

/// A target's connection attempts within one stream.
struct Run {
    status: TargetStatus,
    attempt: u32,
    attached: Option<Attached>,
    /// The key, to redact it from errors (memory only, never logged).
    key: Option<String>,
    /// Failures since it was last live (the backoff's exponent).
    consecutive: u32,
    next_try: Instant,
    /// Bytes of earlier connections, and of this one at the last tick.
    earlier: u64,
    last: (Instant, u64),
    /// When the current connection was attached.
    attached_at: Instant,
    /// What the current connection was made from (URL, sealed key, rendition): an edit of the
    /// destination while it runs reconnects it with the new settings.
    made_from: Option<Settings>,
}

type Settings = (String, Option<Vec<u8>>, Option<String>);

fn settings(d: &Destination) -> Settings {
    (d.url.clone(), d.key_sealed.clone(), d.rendition.clone())
}

fn redact(text: &str, key: Option<&str>) -> String {
    match key.filter(|k| k.len() >= 4) {
        Some(k) => {
            let encoded: String = url::form_urlencoded::byte_serialize(k.as_bytes()).collect();
            text.replace(k, "****").replace(&encoded, "****")
        }
        None => text.to_string(),
    }
}

/// Runs the targets of `stream`, whose pipeline is `pipeline`, until the stream stops them.
pub async fn run(stream: Arc<LiveStream>, pipeline: gst::Pipeline, ctx: Context) {
    let sim = &stream.simulcast;
    sim.started
        .store(true, std::sync::atomic::Ordering::Release);
    let mut runs: HashMap<String, Run> = HashMap::new();
    loop {
        let chosen: Vec<Destination> = lock(&sim.selected).clone();
        let public = stream.has_pipeline() && !stream.is_ending() && stream.mode() == Mode::Public;
        let wanted: Vec<&Destination> = chosen
            .iter()
            .filter(|d| public && d.enabled)
            .take(ctx.config.max_targets)
            .collect();
        // Failures the bus reported, for the attempt they concern (later ones are stale).
        let failures = std::mem::take(&mut *lock(&sim.failures));
        for (name, reason) in failures {
            let Some(run) = runs.values_mut().find(|r| {
                r.attached
                    .as_ref()
                    .is_some_and(|a| a.name == format!("target-{name}"))
            }) else {
                continue;
            };
            let reason = redact(&reason, run.key.as_deref());
            detach(&pipeline, run).await;
            retry_later(run, &ctx, reason);
        }
        // Progress of what runs.
        let now = Instant::now();
        for run in runs.values_mut() {
            let Some(a) = &run.attached else { continue };
            let bytes = a.bytes();
            let (then, before) = run.last;
            let secs = now.duration_since(then).as_secs_f64();
            if secs >= 0.5 {
                run.status.bitrate_kbps =
                    Some(bytes.saturating_sub(before) as f64 * 8.0 / 1000.0 / secs);
                run.last = (now, bytes);
            }
            run.status.bytes = run.earlier + bytes;
            if run.status.state == TargetState::Connecting && bytes >= LIVE_BYTES {
                run.consecutive = 0;
                run.status.error = None;
                set_state(run, &ctx, TargetState::Live);
            } else if run.status.state == TargetState::Connecting
                && now.duration_since(run.attached_at) >= CONNECT_TIMEOUT
            {
                detach(&pipeline, run).await;
                let why = format!("no media went out within {CONNECT_TIMEOUT:?} of connecting");
                retry_later(run, &ctx, why);
            }
        }
        // Stop what must not run; forget what is no longer chosen.
        let ids: Vec<String> = runs.keys().cloned().collect();
        for id in ids {
            let is_wanted = wanted.iter().any(|d| d.id.as_str() == id);
            let is_chosen = chosen.iter().any(|d| d.id.as_str() == id);
            let run = runs.get_mut(&id).expect("listed");
            if !is_wanted && run.status.state != TargetState::Stopped {
                detach(&pipeline, run).await;
                run.status.bitrate_kbps = None;
                run.status.retry_at = None;
                set_state(run, &ctx, TargetState::Stopped);
            }
            if !is_chosen {
                runs.remove(&id);
            }
        }
        for d in &chosen {
            runs.entry(d.id.to_string()).or_insert_with(|| Run {
                status: stopped(d),
                attempt: 0,
                attached: None,
                key: None,
                consecutive: 0,
                next_try: Instant::now(),
                earlier: 0,
                last: (Instant::now(), 0),
                attached_at: Instant::now(),
                made_from: None,
            });
        }
        // Start what should run and is due; reconnect what was edited.
        for d in &wanted {
            let run = runs.get_mut(d.id.as_str()).expect("added");
            if run.attached.is_some() && run.made_from.as_ref() != Some(&settings(d)) {
                detach(&pipeline, run).await;
                run.status.bitrate_kbps = None;
                set_state(run, &ctx, TargetState::Stopped);
            }
            let due = match run.status.state {
                TargetState::Stopped => true,
                TargetState::Retrying => Instant::now() >= run.next_try,
                TargetState::Connecting | TargetState::Live | TargetState::Failed => false,
            };
            if due {
                start(&stream, &pipeline, &ctx, d, run).await;
            }
        }
        *lock(&sim.status) = chosen
            .iter()
            .filter_map(|d| runs.get(d.id.as_str()).map(|r| r.status.clone()))
            .collect();
        tokio::select! {
            () = sim.stop.cancelled() => break,
            () = sim.wake.notified() => {}
            () = tokio::time::sleep(TICK) => {}
        }
    }
    for run in runs.values_mut() {
        if run.attached.is_some() {
            detach(&pipeline, run).await;
        }
        if run.status.state != TargetState::Stopped {
            run.status.bitrate_kbps = None;
            run.status.retry_at = None;
            set_state(run, &ctx, TargetState::Stopped);
        }
    }
    let mut status = lock(&sim.status);
    for s in status.iter_mut() {
        if let Some(run) = runs.get(&s.id) {
            *s = run.status.clone();
        }
    }
    drop(status);
    sim.done.cancel();
}

fn set_state(run: &mut Run, ctx: &Context, state: TargetState) {
    run.status.state = state;
    run.status.since = Utc::now();
    tracing::info!(
        destination = %run.status.id,
        state = state.as_str(),
        error = run.status.error.as_deref().unwrap_or(""),
        "simulcast target"
    );
    (ctx.emit)(run.status.clone());
}

fn retry_later(run: &mut Run, ctx: &Context, reason: String) {
    run.consecutive += 1;
    run.status.failures += 1;
    let wait = ctx
        .config
        .retry_initial
        .saturating_mul(1 << (run.consecutive - 1).min(16))
        .min(ctx.config.retry_max);
    run.next_try = Instant::now() + wait;
    run.status.retry_at = Some(Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default());
    run.status.error = Some(reason);
    run.status.bitrate_kbps = None;
    set_state(run, ctx, TargetState::Retrying);
}

fn fail(run: &mut Run, ctx: &Context, reason: String) {
    run.status.failures += 1;
    run.status.error = Some(reason);
    run.status.retry_at = None;
    set_state(run, ctx, TargetState::Failed);
}

async fn detach(pipeline: &gst::Pipeline, run: &mut Run) {
    if let Some(a) = run.attached.take() {
        run.earlier += a.bytes();
        let pipeline = pipeline.clone();
        let _ = tokio::task::spawn_blocking(move || target::detach(&pipeline, a)).await;
    }
}

/// Checks the destination (address policy, key) and attaches a new attempt.
async fn start(
    stream: &LiveStream,
    pipeline: &gst::Pipeline,
    ctx: &Context,
    d: &Destination,
    run: &mut Run,
) {
    let url = match d.parsed_url() {
        Ok(u) => u,
        Err(e) => return fail(run, ctx, e.to_string()),
    };
    match url
        .check_address(ctx.config.allow_private_destinations)
        .await
    {
        Ok(()) => {}
        Err(e @ DestinationError::Unresolved(_)) => return retry_later(run, ctx, e.to_string()),
        Err(e) => return fail(run, ctx, e.to_string()),
    }
    let key = match d
        .key_sealed
        .as_deref()
        .map(|s| ctx.secrets.open(s))
        .transpose()
    {
        Ok(k) => k,
        Err(e) => return fail(run, ctx, format!("{e}; enter the destination's key again")),
    };
    let location = url.with_key(key.as_deref());
    let sink = match url.protocol {
        Protocol::Rtmp | Protocol::Rtmps => Sink::Rtmp {
            location,
            tls_validation: ctx.config.tls_validation,
        },
        Protocol::Srt => Sink::Srt { uri: location },
    };
    // A rung of the ladder when the destination asks for one the pipeline has (its parsed
    // output is teed when low-latency HLS is on); the source otherwise.
    let has = |name: &str| pipeline.by_name(name).is_some();
    let rung = d.rendition.as_deref().filter(|r| has(&format!("tee-{r}")));
    let (video_tee, audio_tee, rendition) = match rung {
        Some(r) => (
            Some(format!("tee-{r}")),
            Some(format!("tee-{r}-audio"))
                .filter(|t| has(t))
                .or_else(|| Some("tee-audio".to_string()).filter(|t| has(t))),
            r.to_string(),
        ),
        None => (
            Some("tee-video".to_string()).filter(|t| has(t)),
            Some("tee-audio".to_string()).filter(|t| has(t)),
            crate::pipeline::spec::SOURCE_RENDITION.to_string(),
        ),
    };
    run.status.rendition = rendition;
    run.attempt += 1;
    run.key = key;
    let name = format!("target-{}-{}", d.id, run.attempt);
    let spec = TargetSpec {
        name,
        sink,
        video_tee,
        audio_tee,
    };
    let p = pipeline.clone();
    let attached = tokio::task::spawn_blocking(move || target::attach(&p, spec))
        .await
        .unwrap_or_else(|e| Err(crate::pipeline::Error::Gst(e.to_string())));
    match attached {
        Ok(a) => {
            run.last = (Instant::now(), 0);
            run.attached_at = Instant::now();
            run.made_from = Some(settings(d));
            run.attached = Some(a);
            run.status.retry_at = None;
            set_state(run, ctx, TargetState::Connecting);
        }
        Err(e) => {
            let reason = redact(&e.to_string(), run.key.as_deref());
            tracing::debug!(stream = %stream.id, destination = %d.id, "target did not start");
            retry_later(run, ctx, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_redacted_raw_and_percent_encoded() {
        let key = "live_abc/def+1";
        let text =
            "could not connect to rtmp://h/app/live_abc/def+1 (srt streamid=live_abc%2Fdef%2B1)";
        let out = redact(text, Some(key));
        assert!(!out.contains("live_abc"), "{out}");
    }
}
