//! Web Push to viewers' browsers: every entry that lands in a viewer's notification feed is
//! also pushed (RFC 8030), encrypted for the browser (RFC 8291, `aes128gcm` via the `ece`
//! crate) and signed by the server (RFC 8292 VAPID), to each of the viewer's subscriptions.
//!
//! Off the request path: one task reads the notifier's bounded feed channel (a reader that
//! falls behind skips ahead; the feed keeps everything) and sends at most [`MAX_IN_FLIGHT`]
//! pushes at once, each with its own timeout and a few retries, so a slow push service holds
//! up only its own pushes. A push service answering 404 or 410 has forgotten the subscription:
//! it is removed.
pub mod endpoint;
pub mod message;
pub mod vapid;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::store::{Notification, PushSubscription, Store, ViewerId};
pub use vapid::Vapid;

/// Pushes being sent at once (beyond: the feed channel waits, then skips ahead).
pub const MAX_IN_FLIGHT: usize = 32;
/// Push subscriptions one viewer may have (browsers and devices).
pub const MAX_SUBSCRIPTIONS: u32 = 10;
/// One attempt's limit, connect to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per push (network errors, 429 and 5xx are retried).
const MAX_ATTEMPTS: u32 = 3;
/// Wait before the first retry; doubles.
const RETRY_INITIAL: Duration = Duration::from_secs(2);
/// How long a push service keeps an undelivered message (the `TTL` header): a day.
const TTL_S: u32 = 24 * 3600;

#[derive(Clone)]
pub struct WebPush {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    vapid: Vapid,
    allow_private: bool,
}

/// How one attempt ended.
enum Outcome {
    Delivered,
    Gone,
    Retry(String),
    Failed(String),
}

impl WebPush {
    pub fn new(store: Store, vapid: Vapid, allow_private: bool) -> Self {
        WebPush {
            inner: Arc::new(Inner {
                store,
                vapid,
                allow_private,
            }),
        }
    }

    /// The public key for `pushManager.subscribe({applicationServerKey})` (base64url).
    pub fn public_key(&self) -> &str {
        self.inner.vapid.public_key()
    }

    pub fn allow_private(&self) -> bool {
        self.inner.allow_private
    }

    /// Pushes every feed entry to its viewer's subscriptions until `stop`.
    pub async fn run(
        self,
        mut feed: broadcast::Receiver<(ViewerId, Notification)>,
        stop: CancellationToken,
    ) {
        let mut sending = JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(_) = sending.join_next(), if !sending.is_empty() => {}
                got = feed.recv(), if sending.len() < MAX_IN_FLIGHT => match got {
                    Ok((viewer, n)) => {
                        let subs = match self.inner.store.push_subscriptions(&viewer).await {
                            Ok(subs) => subs,
                            Err(e) => {
                                tracing::error!(error = %e, "could not read push subscriptions");
                                continue;
                            }
                        };
                        if subs.is_empty() {
                            continue;
                        }
                        let payload: Arc<[u8]> = message::payload(&n).into();
                        for sub in subs {
                            sending.spawn(self.clone().deliver(sub, payload.clone()));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "web push fell behind; some entries were not pushed");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        sending.shutdown().await;
    }

    /// One push to one subscription, with retries.
    async fn deliver(self, sub: PushSubscription, payload: Arc<[u8]>) {
        let mut wait = RETRY_INITIAL;
        for attempt in 1..=MAX_ATTEMPTS {
            match self.attempt(&sub, &payload).await {
                Outcome::Delivered => return,
                Outcome::Gone => {
                    tracing::info!("push subscription gone; removed");
                    if let Err(e) = self.inner.store.drop_push_endpoint(&sub.endpoint).await {
                        tracing::error!(error = %e, "could not remove a push subscription");
                    }
                    return;
                }
                Outcome::Failed(why) => {
                    tracing::warn!(error = %why, "web push refused");
                    return;
                }
                Outcome::Retry(why) if attempt == MAX_ATTEMPTS => {
                    tracing::warn!(error = %why, attempt, "web push failed; giving up");
                    return;
                }
                Outcome::Retry(why) => {
                    tracing::debug!(error = %why, attempt, "web push failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }

    async fn attempt(&self, sub: &PushSubscription, payload: &[u8]) -> Outcome {
        // Resolved again at every attempt, and connected to exactly what was checked.
        let target = match endpoint::check(&sub.endpoint, self.inner.allow_private).await {
            Ok(t) => t,
            Err(endpoint::Refused::Unresolved(h)) => {
                return Outcome::Retry(format!("{h} unresolved"));
            }
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let body = match ece::encrypt(&sub.p256dh, &sub.auth, payload) {
            Ok(b) => b,
            Err(e) => return Outcome::Failed(format!("encryption: {e}")),
        };
        let authorization = match self
            .inner
            .vapid
            .authorization(&target.origin, chrono::Utc::now().timestamp())
        {
            Ok(a) => a,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let client = match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .resolve_to_addrs(&target.host, &target.addrs)
            .user_agent(concat!("livefront/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let sent = client
            .post(target.url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header("TTL", TTL_S.to_string())
            .header("Urgency", "normal")
            .body(body)
            .send()
            .await;
        match sent {
            Err(e) => Outcome::Retry(e.to_string()),
            Ok(r) => match r.status().as_u16() {
                200..=299 => Outcome::Delivered,
                404 | 410 => Outcome::Gone,
                s @ (429 | 500..=599) => Outcome::Retry(format!("status {s}")),
                s => Outcome::Failed(format!("status {s}")),
            },
        }
    }
}
