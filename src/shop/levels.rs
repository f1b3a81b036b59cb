//! Creator levels: level 1 for everyone; level N+1 when both the public streaming minutes and the
//! attributed orders over the rolling window reach the N-th threshold (and every lower one).
use serde::Serialize;

use crate::config::LevelThreshold;

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

/// What a level gives.
pub fn benefits(level: u32, featured_from: u32) -> Vec<&'static str> {
    let mut out = vec!["share_links", "commissions"];
    if level >= featured_from {
        out.push("home_featured_row");
    }
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
    fn the_featured_row_is_a_benefit_from_its_level() {
        assert!(!benefits(1, 2).contains(&"home_featured_row"));
        assert!(benefits(2, 2).contains(&"home_featured_row"));
    }
}
