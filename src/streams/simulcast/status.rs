//! What each simulcast target of a live stream is doing, shared by the stream (which wakes its
//! task) and the task that runs the targets (`super::run`).
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::Destination;

/// How long the end of a stream waits for its targets to be taken out.
const STOP_WAIT: Duration = Duration::from_secs(10);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Attached, connecting (or connected, before media flows).
    Connecting,
    /// Media is going out.
    Live,
    /// It failed; tried again at `retry_at`.
    Retrying,
    /// It cannot run (address refused by policy, unreadable key, bad URL): not retried.
    Failed,
    /// Not sending: the stream is practice, not live, or the destination is not chosen now.
    Stopped,
}

impl TargetState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Connecting => "connecting",
            TargetState::Live => "live",
            TargetState::Retrying => "retrying",
            TargetState::Failed => "failed",
            TargetState::Stopped => "stopped",
        }
    }
}

/// One destination of a live stream as its owner sees it (never its key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TargetStatus {
    /// The destination's id.
    pub id: String,
    pub name: String,
    pub state: TargetState,
    /// Since when it is in `state`.
    pub since: DateTime<Utc>,
    /// Bytes sent over all its connections in this stream.
    pub bytes: u64,
    /// Over the last few seconds, while live.
    pub bitrate_kbps: Option<f64>,
    /// Why it last failed.
    pub error: Option<String>,
    /// Connections that failed in this stream.
    pub failures: u64,
    /// When a `retrying` target connects again.
    pub retry_at: Option<DateTime<Utc>>,
    /// The rendition it gets (`source` unless the destination chose a rung the ladder has).
    pub rendition: String,
}

/// A live stream's simulcast: the destinations chosen, their status, and how to wake the task
/// that runs them.
#[derive(Default)]
pub struct Simulcast {
    pub(super) selected: Mutex<Vec<Destination>>,
    pub(super) status: Mutex<Vec<TargetStatus>>,
    /// Failures the bus reported: (target name without `target-`, reason).
    pub(super) failures: Mutex<Vec<(String, String)>>,
    pub(super) wake: Notify,
    pub(super) stop: CancellationToken,
    pub(super) done: CancellationToken,
    pub(super) started: std::sync::atomic::AtomicBool,
}

impl Simulcast {
    /// Chooses the destinations (already checked to be the creator's); running targets that are
    /// no longer chosen stop, new ones start when the stream is public.
    pub fn set_selected(&self, destinations: Vec<Destination>) {
        *lock(&self.selected) = destinations;
        self.wake.notify_one();
    }

    /// Something that decides what runs changed (the mode, the end).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The bus reported an error of target `name` (`{destination}-{attempt}`).
    pub fn target_failed(&self, name: &str, reason: &str) {
        lock(&self.failures).push((name.to_string(), reason.to_string()));
        self.wake.notify_one();
    }

    /// Every chosen destination with its state now.
    pub fn report(&self) -> Vec<TargetStatus> {
        let status = lock(&self.status).clone();
        // A destination the task has not looked at yet (no pipeline, or just chosen) is stopped.
        lock(&self.selected)
            .iter()
            .map(|d| {
                status
                    .iter()
                    .find(|s| s.id == d.id.as_str())
                    .cloned()
                    .unwrap_or_else(|| stopped(d))
            })
            .collect()
    }

    /// Takes every target out (the stream ends): returns once they are out, or after a while.
    pub async fn stop(&self) {
        self.stop.cancel();
        if self.started.load(std::sync::atomic::Ordering::Acquire) {
            let _ = tokio::time::timeout(STOP_WAIT, self.done.cancelled()).await;
        }
    }
}

/// A chosen destination that is not sending.
pub fn stopped(d: &Destination) -> TargetStatus {
    TargetStatus {
        id: d.id.to_string(),
        name: d.name.clone(),
        state: TargetState::Stopped,
        since: Utc::now(),
        bytes: 0,
        bitrate_kbps: None,
        error: None,
        failures: 0,
        retry_at: None,
        rendition: d
            .rendition
            .clone()
            .unwrap_or_else(|| crate::pipeline::spec::SOURCE_RENDITION.into()),
    }
}
