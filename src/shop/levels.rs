//! Creator levels: level 1 for everyone; level N+1 when both the public streaming minutes and the
//! attributed orders over the rolling window reach the N-th threshold (and every lower one).
use serde::Serialize;

pub use crate::config::Benefit;
use crate::config::{LevelThreshold, LevelsConfig};

/// Where a creator stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standing {
    pub level: u32,
    /// The next level and how far along the creator is (each part 0.0–1.0); `None` at the top.
    pub next: Option<NextLevel>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NextLevel {
    pub level: u32,
    pub public_minutes: f64,
    pub sales: u64,
    pub progress: Progress,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub public_minutes: f64,
    pub sales: f64,
}

fn fraction(have: f64, need: f64) -> f64 {
    if need <= 0.0 {
        1.0
    } else {
        (have / need).clamp(0.0, 1.0)
    }
}

pub fn standing(thresholds: &[LevelThreshold], public_minutes: f64, sales: u64) -> Standing {
    let reached = thresholds
        .iter()
        .take_while(|t| public_minutes >= t.public_minutes && sales >= t.sales)
        .count();
    let level = 1 + reached as u32;
    let next = thresholds.get(reached).map(|t| NextLevel {
        level: level + 1,
        public_minutes: t.public_minutes,
        sales: t.sales,
        progress: Progress {
            public_minutes: fraction(public_minutes, t.public_minutes),
            sales: fraction(sales as f64, t.sales as f64),
        },
    });
    Standing { level, next }
}

/// What every level has.
const EVERY_LEVEL: [&str; 2] = ["share_links", "commissions"];

/// Whether `level` has `benefit` (a benefit the config leaves out applies to nobody).
pub fn has_benefit(config: &LevelsConfig, level: u32, benefit: Benefit) -> bool {
    config
        .benefits
        .get(benefit.as_str())
        .is_some_and(|&from| level >= from)
}

/// Everything `level` gives, in a stable order.
pub fn benefits_for(config: &LevelsConfig, level: u32) -> Vec<&'static str> {
    let mut out = EVERY_LEVEL.to_vec();
    out.extend(
        Benefit::ALL
            .into_iter()
            .filter(|b| has_benefit(config, level, *b))
            .map(Benefit::as_str),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(public_minutes: f64, sales: u64) -> LevelThreshold {
        LevelThreshold {
            public_minutes,
            sales,
        }
    }

    #[test]
    fn both_minutes_and_sales_are_needed_and_levels_go_in_order() {
        let th = [t(60.0, 0), t(600.0, 5)];
        assert_eq!(standing(&th, 0.0, 0).level, 1);
        assert_eq!(standing(&th, 60.0, 0).level, 2);
        assert_eq!(standing(&th, 6000.0, 4).level, 2, "sales missing");
        assert_eq!(standing(&th, 599.0, 50).level, 2, "minutes missing");
        let top = standing(&th, 600.0, 5);
        assert_eq!((top.level, top.next), (3, None));
        assert_eq!(
            standing(&th, 30.0, 100).level,
            1,
            "level 3's sales do not skip level 2"
        );
        let s = standing(&th, 120.0, 1);
        let next = s.next.unwrap();
        assert_eq!(next.level, 3);
        assert_eq!(next.progress.public_minutes, 0.2);
        assert_eq!(next.progress.sales, 0.2);
        assert_eq!(standing(&[], 0.0, 0).level, 1);
    }

    #[test]
    fn each_benefit_applies_from_its_configured_level() {
        let config = LevelsConfig::default();
        assert_eq!(benefits_for(&config, 1), ["share_links", "commissions"]);
        assert_eq!(
            benefits_for(&config, 2),
            ["share_links", "commissions", "home_featured_row"]
        );
        assert_eq!(
            benefits_for(&config, 4),
            [
                "share_links",
                "commissions",
                "home_featured_row",
                "auctions",
                "more_simulcast_targets"
            ]
        );
        assert!(!has_benefit(&config, 2, Benefit::Auctions));
        assert!(has_benefit(&config, 3, Benefit::Auctions));
        let mut none = config.clone();
        none.benefits.remove("auctions");
        assert!(
            !has_benefit(&none, 99, Benefit::Auctions),
            "left out: nobody"
        );
        for b in Benefit::ALL {
            assert_eq!(Benefit::parse(b.as_str()), Some(b));
        }
        assert_eq!(Benefit::parse("flying"), None);
    }
}
