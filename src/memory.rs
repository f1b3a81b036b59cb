//! Hands memory freed by the process back to the operating system.
//!
//! Each stream's GStreamer threads allocate and free media buffers through glibc's malloc, whose
//! per-thread arenas keep freed pages: over a long run the resident size climbs while the live
//! heap stays flat (bench/README.md, "soak.sh"). `malloc_trim` releases the free pages of every
//! arena.
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often freed memory is handed back.
const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Trims until `stop` is cancelled.
pub async fn trim_periodically(stop: CancellationToken) {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // It walks every arena under its lock: not on a runtime thread.
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only reads and returns free pages of glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
