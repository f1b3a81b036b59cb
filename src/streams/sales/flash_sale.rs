//! Flash-sale rules as plain code: the bounds of a sale, its price, and its phase at a server time.
//! Claims themselves are counted by the store in one statement (see `store::sales`).
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Longest countdown before a sale opens (like TikTok Shop's flash sales).
pub const MAX_COUNTDOWN_S: u32 = 300;
/// Shortest and longest sale.
pub const MIN_DURATION_S: u32 = 60;
pub const MAX_DURATION_S: u32 = 20 * 60;
/// Most units one sale offers.
pub const MAX_QUANTITY: u32 = 10_000;
/// Largest discount, in percent.
pub const MAX_DISCOUNT_PERCENT: u32 = 90;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaleError {
    #[error("countdown_s must be 0-{MAX_COUNTDOWN_S}")]
    Countdown,
    #[error("duration_s must be {MIN_DURATION_S}-{MAX_DURATION_S}")]
    Duration,
    #[error("quantity must be 1-{MAX_QUANTITY}")]
    Quantity,
    #[error("per_viewer_limit must be 1 up to the quantity")]
    PerViewer,
    #[error("give either price or discount_percent, not both or neither")]
    PriceOrDiscount,
    #[error("discount_percent must be 1-{MAX_DISCOUNT_PERCENT}")]
    Discount,
    #[error("the sale price must be above 0 and below the product's price")]
    Price,
}

/// A sale's bounds, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    pub countdown_s: u32,
    pub duration_s: u32,
    pub quantity: u32,
    pub per_viewer_limit: u32,
}

impl Terms {
    pub fn check(
        countdown_s: u32,
        duration_s: u32,
        quantity: u32,
        per_viewer_limit: Option<u32>,
    ) -> Result<Terms, SaleError> {
        if countdown_s > MAX_COUNTDOWN_S {
            return Err(SaleError::Countdown);
        }
        if !(MIN_DURATION_S..=MAX_DURATION_S).contains(&duration_s) {
            return Err(SaleError::Duration);
        }
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(SaleError::Quantity);
        }
        let per_viewer_limit = per_viewer_limit.unwrap_or(1);
        if !(1..=quantity).contains(&per_viewer_limit) {
            return Err(SaleError::PerViewer);
        }
        Ok(Terms {
            countdown_s,
            duration_s,
            quantity,
            per_viewer_limit,
        })
    }

    /// When a sale created at `now` opens and closes.
    pub fn window(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let starts = now + TimeDelta::seconds(i64::from(self.countdown_s));
        (
            starts,
            starts + TimeDelta::seconds(i64::from(self.duration_s)),
        )
    }
}

/// The sale price in minor units: a fixed `price` (already in minor units) or a whole-percent
/// discount off the list price (rounded down to the minor unit, never to 0).
pub fn sale_price(
    list_minor: i64,
    price_minor: Option<i64>,
    discount_percent: Option<u32>,
) -> Result<i64, SaleError> {
    let price = match (price_minor, discount_percent) {
        (Some(p), None) => p,
        (None, Some(d)) => {
            if !(1..=MAX_DISCOUNT_PERCENT).contains(&d) {
                return Err(SaleError::Discount);
            }
            list_minor.saturating_mul(i64::from(100 - d)) / 100
        }
        _ => return Err(SaleError::PriceOrDiscount),
    };
    if price <= 0 || price >= list_minor {
        return Err(SaleError::Price);
    }
    Ok(price)
}

/// Where a sale is at a server time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Counting down to `starts_at`.
    Scheduled,
    /// Open, units left.
    Running,
    /// Open, but every unit is claimed (an unconfirmed reservation that expires frees one).
    SoldOut,
    /// Past `ends_at`, or closed with its stream.
    Ended,
}

pub fn phase(
    now: DateTime<Utc>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    closed: bool,
    remaining: u32,
) -> Phase {
    if closed || now >= ends_at {
        Phase::Ended
    } else if now < starts_at {
        Phase::Scheduled
    } else if remaining == 0 {
        Phase::SoldOut
    } else {
        Phase::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        assert_eq!(Terms::check(301, 60, 1, None), Err(SaleError::Countdown));
        assert_eq!(Terms::check(0, 59, 1, None), Err(SaleError::Duration));
        assert_eq!(Terms::check(0, 1201, 1, None), Err(SaleError::Duration));
        assert_eq!(Terms::check(0, 60, 0, None), Err(SaleError::Quantity));
        assert_eq!(Terms::check(0, 60, 3, Some(4)), Err(SaleError::PerViewer));
        assert_eq!(
            Terms::check(300, 1200, 3, None).unwrap().per_viewer_limit,
            1
        );
    }

    #[test]
    fn price_is_fixed_or_a_discount_below_the_list_price() {
        assert_eq!(sale_price(1999, None, Some(25)), Ok(1499));
        assert_eq!(sale_price(1999, Some(999), None), Ok(999));
        assert_eq!(sale_price(1999, Some(1999), None), Err(SaleError::Price));
        assert_eq!(sale_price(1999, Some(0), None), Err(SaleError::Price));
        assert_eq!(sale_price(1999, None, Some(91)), Err(SaleError::Discount));
        assert_eq!(
            sale_price(1999, Some(1), Some(10)),
            Err(SaleError::PriceOrDiscount)
        );
        assert_eq!(sale_price(1, None, Some(50)), Err(SaleError::Price));
    }

    #[test]
    fn phases_follow_the_server_clock() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        assert_eq!(phase(t(0), t(10), t(70), false, 5), Phase::Scheduled);
        assert_eq!(phase(t(10), t(10), t(70), false, 5), Phase::Running);
        assert_eq!(phase(t(11), t(10), t(70), false, 0), Phase::SoldOut);
        assert_eq!(phase(t(70), t(10), t(70), false, 5), Phase::Ended);
        assert_eq!(phase(t(20), t(10), t(70), true, 5), Phase::Ended);
    }
}
