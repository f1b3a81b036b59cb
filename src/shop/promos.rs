//! Promo code rules: when a code is active, and what viewers see of it.
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{Mode, Promo, Stream, StreamState};

pub const MIN_CODE_CHARS: usize = 3;
pub const MAX_CODE_CHARS: usize = 32;

/// Codes: 3-32 characters of A-Z, a-z, 0-9, `_` and `-` (compared without case).
pub fn valid_code(c: &str) -> bool {
    (MIN_CODE_CHARS..=MAX_CODE_CHARS).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A promo code as viewers see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PromoOffer {
    pub code: String,
    pub description: String,
    /// "10%" or "5.00 EUR".
    pub discount: String,
    /// Valid only while the stream is live (and public).
    pub live_only: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// Where a code stands, for viewers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromoState {
    /// Viewers see it and may redeem it.
    Active,
    /// Not yet: the stream is practice or not live yet (live-only), or `starts_at` is ahead.
    Pending,
    /// `ends_at` has passed.
    Expired,
    /// A live-only code whose stream has ended.
    Ended,
    /// Every redemption is taken.
    Exhausted,
}

/// Where a stream is in its life, for promo codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Before,
    Live,
    After,
}

impl Phase {
    /// From the stored state and, while the stream has a live pipeline, whether it is ending.
    pub fn of(state: StreamState, live_ending: Option<bool>) -> Phase {
        match live_ending {
            Some(true) => Phase::After,
            Some(false) if state == StreamState::Live => Phase::Live,
            _ if state == StreamState::Ended => Phase::After,
            _ => Phase::Before,
        }
    }
}

/// `stream.mode` must be the effective one (a live stream's current mode).
pub fn promo_state(p: &Promo, stream: &Stream, phase: Phase, now: DateTime<Utc>) -> PromoState {
    if p.live_only && phase == Phase::After {
        PromoState::Ended
    } else if p.ends_at.is_some_and(|t| t <= now) {
        PromoState::Expired
    } else if stream.mode != Mode::Public
        || p.starts_at.is_some_and(|t| t > now)
        || (p.live_only && phase != Phase::Live)
    {
        PromoState::Pending
    } else if p.max_redemptions.is_some_and(|m| p.redemptions >= m) {
        PromoState::Exhausted
    } else {
        PromoState::Active
    }
}

pub fn offer(p: &Promo) -> PromoOffer {
    PromoOffer {
        code: p.code.clone(),
        description: p.description.clone(),
        discount: p.discount.clone(),
        live_only: p.live_only,
        starts_at: p.starts_at,
        ends_at: p.ends_at,
    }
}
