//! The file names a playlist has listed (segments and init sections), in memory that does not grow
//! with the number of segments: names are numbered (`seg00012.ts`, `init00150.mp4`), and a list
//! names runs of consecutive numbers, so it is kept as those runs. A public list has one run per
//! stretch of public media; a practice interval cut out of it starts the next.

use std::ops::Range;

#[derive(Debug, Clone, Default)]
pub struct ListedNames {
    runs: Vec<Run>,
}

/// Names `{prefix}{number:0width$}{suffix}` for each number of `numbers`.
#[derive(Debug, Clone)]
struct Run {
    prefix: String,
    suffix: String,
    width: usize,
    numbers: Range<u64>,
}

/// A name split around its first digits: prefix, digits, suffix (e.g. `seg`, `00012`, `.m4s`).
fn split(name: &str) -> Option<(&str, &str, &str)> {
    let start = name.find(|c: char| c.is_ascii_digit())?;
    let end = start
        + name[start..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(name.len() - start);
    Some((&name[..start], &name[start..end], &name[end..]))
}

impl Run {
    /// Whether `number` written in this run's width gives `digits`.
    fn writes(&self, number: u64, digits: &str) -> bool {
        format!("{number:0w$}", w = self.width) == digits
    }

    fn lists(&self, prefix: &str, number: u64, digits: &str, suffix: &str) -> bool {
        self.prefix == prefix
            && self.suffix == suffix
            && self.numbers.contains(&number)
            && self.writes(number, digits)
    }
}

impl ListedNames {
    /// Adds `name`: extends the run it follows, or starts one.
    pub fn insert(&mut self, name: &str) {
        let parsed = split(name).and_then(|(p, d, s)| Some((p, d.parse::<u64>().ok()?, d, s)));
        let Some((prefix, number, digits, suffix)) = parsed else {
            // Not numbered: a run of its own name (the server writes none such).
            if !self.contains(name) {
                self.runs.push(Run {
                    prefix: name.to_string(),
                    suffix: String::new(),
                    width: 0,
                    numbers: 0..0,
                });
            }
            return;
        };
        if self
            .runs
            .iter()
            .rev()
            .any(|r| r.lists(prefix, number, digits, suffix))
        {
            return;
        }
        let next = self.runs.iter_mut().rev().find(|r| {
            r.prefix == prefix
                && r.suffix == suffix
                && r.numbers.end == number
                && r.writes(number, digits)
        });
        match next {
            Some(run) => run.numbers.end += 1,
            None => self.runs.push(Run {
                prefix: prefix.to_string(),
                suffix: suffix.to_string(),
                width: digits.len(),
                numbers: number..number + 1,
            }),
        }
    }

    /// Whether `name` was inserted. Searched from the newest run, which is what live players ask for.
    pub fn contains(&self, name: &str) -> bool {
        let parsed = split(name).and_then(|(p, d, s)| Some((p, d.parse::<u64>().ok()?, d, s)));
        match parsed {
            Some((prefix, number, digits, suffix)) => self
                .runs
                .iter()
                .rev()
                .any(|r| r.lists(prefix, number, digits, suffix)),
            None => self
                .runs
                .iter()
                .any(|r| r.numbers.is_empty() && r.prefix == name),
        }
    }

    /// How many runs are kept (for tests and memory figures).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_names_are_one_run_and_a_gap_starts_another() {
        let mut names = ListedNames::default();
        for n in (0..1000).chain(1500..1600) {
            names.insert(&format!("seg{n:05}.m4s"));
            names.insert(if n < 1500 {
                "init00000.mp4"
            } else {
                "init01500.mp4"
            });
        }
        assert_eq!(names.runs(), 4);
        for listed in [
            "seg00000.m4s",
            "seg00999.m4s",
            "seg01500.m4s",
            "seg01599.m4s",
            "init01500.mp4",
        ] {
            assert!(names.contains(listed), "{listed}");
        }
        for not in [
            "seg01000.m4s",
            "seg01499.m4s",
            "seg01600.m4s",
            "seg00001.ts",
            "seg1.m4s",
            "init00001.mp4",
            "xseg00001.m4s",
            "",
            "index.m3u8",
        ] {
            assert!(!names.contains(not), "{not}");
        }
    }

    #[test]
    fn numbers_past_their_width_continue_the_run() {
        let mut names = ListedNames::default();
        for n in 99_998..100_002u64 {
            names.insert(&format!("seg{n:05}.ts"));
        }
        assert_eq!(names.runs(), 1);
        assert!(names.contains("seg100001.ts"));
        assert!(!names.contains("seg0100001.ts"));
    }

    #[test]
    fn names_without_numbers_are_kept_as_they_are() {
        let mut names = ListedNames::default();
        names.insert("intro.ts");
        names.insert("intro.ts");
        assert_eq!(names.runs(), 1);
        assert!(names.contains("intro.ts"));
        assert!(!names.contains("outro.ts"));
    }
}
