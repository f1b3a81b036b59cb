//! Auction rules as plain code: who leads, at what price, until when — from the bids in the order
//! the server received them. The same function takes a live bid and replays a stored log, so an
//! auction's result is reproducible from its bid log ([`replay`]).
//!
//! The rules (documented in the README):
//! - The first bid must be at least the starting price; every later one must beat the current
//!   price by the increment (a fixed step, or a table of steps by price).
//! - A plain bid (`amount`) bids exactly that. A proxy bid (`max_amount`) bids as little as needed
//!   and then, for its bidder, up to the maximum, like eBay: when a challenger's maximum is above
//!   the leader's, the challenger leads at the leader's maximum plus one increment (capped at the
//!   challenger's maximum, never below the challenger's own amount); otherwise the leader stays
//!   and the price rises to the challenger's maximum plus one increment, capped at the leader's
//!   maximum. Equal maximums: the earlier bid leads (server arrival order; ties cannot happen).
//! - The leader cannot bid against themselves; they may raise their maximum (the price stays).
//! - A bid arriving at or after the end is refused. With anti-sniping (`extend_on_bid_s`, not in
//!   sudden death), an accepted bid within the last N seconds moves the end to N seconds after it.
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Most tiers in an increment table.
pub const MAX_TIERS: usize = 16;

/// One step of an increment table: from this price (minor units) on, bids rise by `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub from_minor: i64,
    pub step_minor: i64,
}

/// The increment by price: tiers sorted by `from_minor`, the first from 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Increments(Vec<Tier>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("an increment table has 1-{MAX_TIERS} tiers, the first from 0, in increasing order")]
    BadTable,
    #[error("every increment must be above 0")]
    ZeroStep,
}

impl Increments {
    pub fn fixed(step_minor: i64) -> Result<Self, RulesError> {
        Self::table(vec![Tier {
            from_minor: 0,
            step_minor,
        }])
    }

    pub fn table(tiers: Vec<Tier>) -> Result<Self, RulesError> {
        if tiers.is_empty() || tiers.len() > MAX_TIERS || tiers[0].from_minor != 0 {
            return Err(RulesError::BadTable);
        }
        if tiers.windows(2).any(|w| w[0].from_minor >= w[1].from_minor) {
            return Err(RulesError::BadTable);
        }
        if tiers.iter().any(|t| t.step_minor <= 0) {
            return Err(RulesError::ZeroStep);
        }
        Ok(Increments(tiers))
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.0
    }

    /// The step above `price`.
    pub fn step(&self, price: i64) -> i64 {
        self.0
            .iter()
            .rev()
            .find(|t| t.from_minor <= price)
            .unwrap_or(&self.0[0])
            .step_minor
    }
}

/// What an auction was created with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    pub starting_minor: i64,
    pub increments: Increments,
    pub starts_at: DateTime<Utc>,
    /// The end before any extension.
    pub ends_at: DateTime<Utc>,
    /// No extension whatever happens.
    pub sudden_death: bool,
    /// Anti-sniping window in ms (0: off).
    pub extend_ms: i64,
}

/// What a bidder asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Offer {
    /// Bid exactly this.
    Amount(i64),
    /// Bid as little as needed, up to this (proxy bid).
    Max(i64),
}

/// A bid as the server received it: what the log stores and [`replay`] reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bid {
    /// 1, 2, … in arrival order.
    pub seq: u32,
    /// The viewer's id (who may not bid against themselves).
    pub bidder: String,
    pub handle: String,
    pub offer: Offer,
    /// Server time of arrival.
    pub at: DateTime<Utc>,
}

/// Who leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leader {
    pub bidder: String,
    pub handle: String,
    /// Their maximum (secret: never sent to other viewers).
    pub max_minor: i64,
}

/// An auction's state after some bids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The current price; `None` before the first bid.
    pub price_minor: Option<i64>,
    pub leader: Option<Leader>,
    pub ends_at: DateTime<Utc>,
    /// Accepted bids.
    pub bids: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the auction has not started")]
    NotStarted,
    #[error("the auction is over")]
    Over,
    #[error("a bid must be at least {minimum_minor} (minor units)")]
    TooLow { minimum_minor: i64 },
    #[error("you are already the highest bidder (raise your max_amount instead)")]
    AlreadyLeading,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotStarted => "not_started",
            Refusal::Over => "auction_over",
            Refusal::TooLow { .. } => "bid_too_low",
            Refusal::AlreadyLeading => "already_leading",
        }
    }
}

/// What an accepted bid did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub price_minor: i64,
    /// The bidder leads after it (false: a proxy maximum beat it at once).
    pub leads: bool,
    pub extended: bool,
}

impl State {
    pub fn new(rules: &Rules) -> Self {
        State {
            price_minor: None,
            leader: None,
            ends_at: rules.ends_at,
            bids: 0,
        }
    }

    /// The least the next bid must be.
    pub fn minimum(&self, rules: &Rules) -> i64 {
        match self.price_minor {
            None => rules.starting_minor,
            Some(p) => p.saturating_add(rules.increments.step(p)),
        }
    }

    pub fn is_over(&self, now: DateTime<Utc>) -> bool {
        now >= self.ends_at
    }

    /// Takes `bid` (which arrived after every bid applied so far) or says why not.
    pub fn apply(&mut self, rules: &Rules, bid: &Bid) -> Result<Accepted, Refusal> {
        if bid.at < rules.starts_at {
            return Err(Refusal::NotStarted);
        }
        if self.is_over(bid.at) {
            return Err(Refusal::Over);
        }
        let minimum = self.minimum(rules);
        let (amount, max) = match bid.offer {
            Offer::Amount(a) => (a, a),
            Offer::Max(m) => (minimum, m),
        };
        let leads;
        match &mut self.leader {
            Some(l) if l.bidder == bid.bidder => match bid.offer {
                Offer::Max(m) if m > l.max_minor => {
                    l.max_minor = m;
                    leads = true;
                }
                _ => return Err(Refusal::AlreadyLeading),
            },
            _ if max < minimum || amount < minimum => {
                return Err(Refusal::TooLow {
                    minimum_minor: minimum,
                });
            }
            None => {
                self.price_minor = Some(amount);
                self.leader = Some(Leader {
                    bidder: bid.bidder.clone(),
                    handle: bid.handle.clone(),
                    max_minor: max,
                });
                leads = true;
            }
            Some(l) if max > l.max_minor => {
                let over = l
                    .max_minor
                    .saturating_add(rules.increments.step(l.max_minor));
                self.price_minor = Some(max.min(amount.max(over)));
                *l = Leader {
                    bidder: bid.bidder.clone(),
                    handle: bid.handle.clone(),
                    max_minor: max,
                };
                leads = true;
            }
            Some(l) => {
                // The leader's maximum answers: one increment above the challenger, up to it.
                let answer = max.saturating_add(rules.increments.step(max));
                self.price_minor = Some(l.max_minor.min(answer));
                leads = false;
            }
        }
        self.bids += 1;
        let mut extended = false;
        if !rules.sudden_death && rules.extend_ms > 0 {
            let window = TimeDelta::milliseconds(rules.extend_ms);
            if self.ends_at - bid.at < window {
                self.ends_at = bid.at + window;
                extended = true;
            }
        }
        Ok(Accepted {
            price_minor: self.price_minor.unwrap_or(amount),
            leads,
            extended,
        })
    }
}

/// The state a log of accepted bids leads to; `Err` names the first bid the rules refuse (a log
/// that was not made by these rules).
pub fn replay(rules: &Rules, log: &[Bid]) -> Result<State, (u32, Refusal)> {
    let mut state = State::new(rules);
    for bid in log {
        state.apply(rules, bid).map_err(|r| (bid.seq, r))?;
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn rules(extend_ms: i64, sudden_death: bool) -> Rules {
        Rules {
            starting_minor: 1000,
            increments: Increments::table(vec![
                Tier {
                    from_minor: 0,
                    step_minor: 100,
                },
                Tier {
                    from_minor: 5000,
                    step_minor: 500,
                },
            ])
            .unwrap(),
            starts_at: t(0),
            ends_at: t(60),
            sudden_death,
            extend_ms,
        }
    }

    fn bid(seq: u32, who: &str, offer: Offer, at: i64) -> Bid {
        Bid {
            seq,
            bidder: who.into(),
            handle: who.into(),
            offer,
            at: t(at),
        }
    }

    #[test]
    fn plain_bids_must_beat_the_current_price_by_the_increment() {
        let r = rules(0, false);
        let mut s = State::new(&r);
        assert_eq!(
            s.apply(&r, &bid(1, "a", Offer::Amount(999), 1)),
            Err(Refusal::TooLow {
                minimum_minor: 1000
            })
        );
        assert!(s.apply(&r, &bid(1, "a", Offer::Amount(1000), 1)).is_ok());
        assert_eq!(
            s.apply(&r, &bid(2, "b", Offer::Amount(1099), 2)),
            Err(Refusal::TooLow {
                minimum_minor: 1100
            })
        );
        assert_eq!(
            s.apply(&r, &bid(2, "a", Offer::Amount(2000), 2)),
            Err(Refusal::AlreadyLeading)
        );
        assert!(s.apply(&r, &bid(2, "b", Offer::Amount(5000), 2)).is_ok());
        // From 5000 the table's step is 500.
        assert_eq!(s.minimum(&r), 5500);
        assert_eq!(
            s.apply(&r, &bid(3, "a", Offer::Amount(5000), 70)),
            Err(Refusal::Over)
        );
    }

    #[test]
    fn proxy_bids_resolve_like_ebay() {
        let r = rules(0, false);
        let mut s = State::new(&r);
        // a's maximum 3000: a leads at the starting price.
        s.apply(&r, &bid(1, "a", Offer::Max(3000), 1)).unwrap();
        assert_eq!(s.price_minor, Some(1000));
        // b bids 2000: a's proxy answers at 2100 and still leads.
        let acc = s.apply(&r, &bid(2, "b", Offer::Amount(2000), 2)).unwrap();
        assert!(!acc.leads);
        assert_eq!(
            (s.price_minor, s.leader.as_ref().unwrap().handle.as_str()),
            (Some(2100), "a")
        );
        // b's maximum 3000 equals a's: the earlier leads, at 3000.
        let acc = s.apply(&r, &bid(3, "b", Offer::Max(3000), 3)).unwrap();
        assert!(!acc.leads);
        assert_eq!(
            (s.price_minor, s.leader.as_ref().unwrap().handle.as_str()),
            (Some(3000), "a")
        );
        // c's maximum 4000 beats it: c leads at a's maximum plus the step.
        let acc = s.apply(&r, &bid(4, "c", Offer::Max(4000), 4)).unwrap();
        assert!(acc.leads);
        assert_eq!(
            (s.price_minor, s.leader.as_ref().unwrap().handle.as_str()),
            (Some(3100), "c")
        );
        // c raises its maximum: the price stays.
        s.apply(&r, &bid(5, "c", Offer::Max(9000), 5)).unwrap();
        assert_eq!(s.price_minor, Some(3100));
        // d's maximum 8000: c answers at 8500 (the table's step above 5000 is 500).
        s.apply(&r, &bid(6, "d", Offer::Max(8000), 6)).unwrap();
        assert_eq!(
            (s.price_minor, s.leader.as_ref().unwrap().handle.as_str()),
            (Some(8500), "c")
        );
    }

    #[test]
    fn anti_sniping_extends_unless_sudden_death() {
        let r = rules(10_000, false);
        let mut s = State::new(&r);
        s.apply(&r, &bid(1, "a", Offer::Amount(1000), 30)).unwrap();
        assert_eq!(s.ends_at, t(60), "not in the last 10 s");
        let acc = s.apply(&r, &bid(2, "b", Offer::Amount(1100), 55)).unwrap();
        assert!(acc.extended);
        assert_eq!(s.ends_at, t(65));
        assert!(
            s.apply(&r, &bid(3, "a", Offer::Amount(1200), 62)).is_ok(),
            "within the extension"
        );
        assert_eq!(s.ends_at, t(72));

        let r = rules(10_000, true);
        let mut s = State::new(&r);
        s.apply(&r, &bid(1, "b", Offer::Amount(1100), 55)).unwrap();
        assert_eq!(s.ends_at, t(60));
        assert_eq!(
            s.apply(&r, &bid(2, "a", Offer::Amount(1200), 62)),
            Err(Refusal::Over)
        );
    }

    #[test]
    fn replaying_the_log_gives_the_same_state() {
        let r = rules(5_000, false);
        let mut live = State::new(&r);
        let mut log = Vec::new();
        let offers = [
            ("a", Offer::Max(4000)),
            ("b", Offer::Amount(1500)),
            ("c", Offer::Amount(1000)),
            ("b", Offer::Max(6000)),
            ("a", Offer::Amount(7000)),
        ];
        for (i, (who, offer)) in offers.into_iter().enumerate() {
            let b = bid(log.len() as u32 + 1, who, offer, 50 + i as i64 * 3);
            if live.apply(&r, &b).is_ok() {
                log.push(b);
            }
        }
        assert_eq!(replay(&r, &log), Ok(live.clone()));
        assert_eq!(live.leader.unwrap().handle, "a");
        assert_eq!(live.price_minor, Some(7000));
    }

    #[test]
    fn increment_tables_are_validated() {
        assert_eq!(Increments::fixed(0), Err(RulesError::ZeroStep));
        assert_eq!(Increments::table(vec![]), Err(RulesError::BadTable));
        let unsorted = vec![
            Tier {
                from_minor: 0,
                step_minor: 1,
            },
            Tier {
                from_minor: 0,
                step_minor: 2,
            },
        ];
        assert_eq!(Increments::table(unsorted), Err(RulesError::BadTable));
    }
}
