//! A small mutation fuzzer for the stable toolchain (cargo-fuzz needs nightly; see
//! bench/README.md, "Fuzzing"): seeds from real clients, mutated (bit flips, interesting values,
//! inserted, deleted, repeated and spliced ranges), run through the real parsers and servers for
//! `FUZZ_SECONDS` each. There is no coverage instrumentation; an input that gives an outcome not
//! seen before (the harness names outcomes) joins the corpus, which steers a little.
//!
//! A crash is a panic in livefront's own code (`src/`) or a broken property the harness checks
//! (a 5xx answer, a playlist that does not read back). Panics inside `rml_rtmp`, which the RTMP
//! connection catches on purpose, are counted apart.
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Each harness runs this long unless `FUZZ_SECONDS` says otherwise.
const DEFAULT_SECONDS: u64 = 10;
/// The corpus stops growing here (the oldest finds stay).
const MAX_CORPUS: usize = 512;
/// Distinct outcomes kept apart; more count together.
const MAX_OUTCOMES: usize = 4096;
/// Inputs never grow past this.
const MAX_INPUT: usize = 256 * 1024;

/// A panic seen by the hook: where, what.
#[derive(Debug, Clone)]
pub struct Panic {
    pub location: String,
    pub message: String,
}

impl Panic {
    /// In livefront's own sources (a crash), rather than in a dependency.
    pub fn is_ours(&self) -> bool {
        self.location.starts_with("src/")
    }
}

fn panics() -> &'static Mutex<Vec<Panic>> {
    static PANICS: OnceLock<Mutex<Vec<Panic>>> = OnceLock::new();
    PANICS.get_or_init(|| {
        // Every panic of the process, whichever thread (the servers' tasks too), is recorded
        // instead of printed: guarded library panics would flood the output.
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            panics()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Panic { location, message });
        }));
        Mutex::new(Vec::new())
    })
}

/// How many panics the hook has seen so far.
pub fn panic_count() -> usize {
    panics().lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// The panics seen since `from`.
pub fn panics_since(from: usize) -> Vec<Panic> {
    panics().lock().unwrap_or_else(|e| e.into_inner())[from..].to_vec()
}

/// A smaller input that still fails: whole lines dropped first, then single bytes.
pub fn minimize(input: &[u8], fails: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut best = input.to_vec();
    // Lines.
    let mut i = 0;
    loop {
        let lines: Vec<&[u8]> = best.split_inclusive(|&b| b == b'\n').collect();
        if i >= lines.len() {
            break;
        }
        let candidate: Vec<u8> = lines
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        if fails(&candidate) {
            best = candidate;
        } else {
            i += 1;
        }
    }
    // Bytes (bounded: inputs here are small by then).
    let mut i = 0;
    while i < best.len() && best.len() <= 4096 {
        let mut candidate = best.clone();
        candidate.remove(i);
        if fails(&candidate) {
            best = candidate;
        } else {
            i += 1;
        }
    }
    best
}

pub struct Campaign {
    pub name: &'static str,
    corpus: Vec<Vec<u8>>,
    seen: HashSet<String>,
    rng: StdRng,
    started: Instant,
    deadline: Instant,
    /// Seeds not yet run unchanged.
    fresh: usize,
    pub execs: u64,
    pub crashes: Vec<(Vec<u8>, String)>,
    /// The panic count when the campaign started.
    first_panic: usize,
    /// Named outcomes and how often each happened.
    pub outcomes: std::collections::BTreeMap<String, u64>,
}

impl Campaign {
    pub fn new(name: &'static str, seeds: Vec<Vec<u8>>) -> Campaign {
        let seconds = std::env::var("FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_SECONDS);
        let seed = std::env::var("FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random);
        eprintln!(
            "fuzz {name}: {seconds} s, FUZZ_SEED={seed}, {} seeds",
            seeds.len()
        );
        let first_panic = panic_count();
        let started = Instant::now();
        Campaign {
            name,
            fresh: seeds.len(),
            corpus: seeds,
            seen: HashSet::new(),
            rng: StdRng::seed_from_u64(seed),
            started,
            deadline: started + Duration::from_secs(seconds),
            execs: 0,
            crashes: Vec::new(),
            first_panic,
            outcomes: Default::default(),
        }
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// The next input (the seeds first, as they are), or `None` when time is up.
    pub fn next_input(&mut self) -> Option<Vec<u8>> {
        if Instant::now() >= self.deadline {
            return None;
        }
        self.execs += 1;
        if self.fresh > 0 {
            self.fresh -= 1;
            return Some(self.corpus[self.corpus.len() - 1 - self.fresh].clone());
        }
        let i = self.rng.random_range(0..self.corpus.len());
        let mut input = self.corpus[i].clone();
        let rounds = 1 << self.rng.random_range(0..4);
        for _ in 0..rounds {
            self.mutate(&mut input);
        }
        Some(input)
    }

    /// Records what `input` led to; a new outcome keeps the input in the corpus.
    pub fn outcome(&mut self, input: &[u8], outcome: impl Into<String>) {
        let mut outcome = outcome.into();
        if self.outcomes.len() >= MAX_OUTCOMES && !self.outcomes.contains_key(&outcome) {
            outcome = "(other outcomes)".into();
        }
        *self.outcomes.entry(outcome.clone()).or_default() += 1;
        if self.seen.insert(outcome) && self.corpus.len() < MAX_CORPUS {
            self.corpus.push(input.to_vec());
        }
    }

    /// Checks the panics since `from` (taken before running `input`): ours are crashes.
    pub fn check_panics(&mut self, from: usize, input: &[u8]) {
        for p in panics_since(from) {
            if p.is_ours() {
                self.crash(input, format!("panic at {}: {}", p.location, p.message));
            }
        }
    }

    pub fn crash(&mut self, input: &[u8], what: String) {
        eprintln!("fuzz {}: CRASH {what}", self.name);
        if self.crashes.len() < 20 {
            self.crashes.push((input.to_vec(), what));
        }
    }

    /// Prints the figures, saves crashing inputs under `target/fuzz-crashes/`, and fails when
    /// there was any.
    pub fn finish(self) -> anyhow::Result<()> {
        let secs = self.started.elapsed().as_secs_f64();
        // Panics caught by a guard on purpose (rml_rtmp's, inside the RTMP connection).
        let guarded = panics_since(self.first_panic)
            .iter()
            .filter(|p| !p.is_ours())
            .count();
        let line = format!(
            "fuzz {}: {} executions in {secs:.0} s ({:.0}/s), corpus {}, {} outcomes, {} guarded library panics, {} crashes",
            self.name,
            self.execs,
            self.execs as f64 / secs,
            self.corpus.len(),
            self.outcomes.len(),
            guarded,
            self.crashes.len()
        );
        eprintln!("{line}");
        for (outcome, n) in self.outcomes.iter().take(40) {
            eprintln!("  {n:>8}  {outcome}");
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
        if let Ok(path) = std::env::var("FUZZ_REPORT") {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            writeln!(f, "{line}")?;
        }
        if self.crashes.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&dir)?;
        for (i, (input, what)) in self.crashes.iter().enumerate() {
            let path = dir.join(format!("{}-{i}.bin", self.name));
            std::fs::write(&path, input)?;
            eprintln!("  {} <- {what}", path.display());
        }
        anyhow::bail!(
            "{line}: {:?}",
            self.crashes.iter().map(|c| &c.1).collect::<Vec<_>>()
        )
    }

    fn mutate(&mut self, input: &mut Vec<u8>) {
        const INTERESTING: &[u8] = &[
            0, 1, 2, 3, 0x7f, 0x80, 0xfe, 0xff, 0x10, 0x40, b'"', b'.', b',',
        ];
        const WIDE: &[u32] = &[
            0,
            1,
            0x7f,
            0x80,
            0xff,
            0x100,
            0x7fff,
            0x8000,
            0xffff,
            0x00ff_ffff,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
        ];
        let rng = &mut self.rng;
        // Most structure is near the start of an input (headers, commands): aim there often.
        let pos = |rng: &mut StdRng, len: usize| -> usize {
            if len == 0 {
                0
            } else if rng.random_bool(0.6) {
                rng.random_range(0..len.min(512))
            } else {
                rng.random_range(0..len)
            }
        };
        let len = input.len();
        match rng.random_range(0..10) {
            0 if len > 0 => {
                let i = pos(rng, len);
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = pos(rng, len);
                input[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
            }
            2 if len > 0 => {
                let i = pos(rng, len);
                input[i] = rng.random();
            }
            3 if len >= 4 => {
                let i = pos(rng, len - 3).min(len - 4);
                let v = WIDE[rng.random_range(0..WIDE.len())];
                let bytes = if rng.random_bool(0.5) {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                input[i..i + 4].copy_from_slice(&bytes);
            }
            4 => {
                let i = pos(rng, len + 1).min(len);
                let n = rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                input.splice(i..i, bytes);
            }
            5 if len > 1 => {
                let i = pos(rng, len);
                let n = rng.random_range(1..=(len - i).min(64));
                input.drain(i..i + n);
            }
            6 if len > 1 => {
                // Repeat a range (a chunk or a field twice).
                let i = pos(rng, len);
                let n = rng.random_range(1..=(len - i).min(256));
                let copy = input[i..i + n].to_vec();
                let at = pos(rng, len + 1).min(len);
                input.splice(at..at, copy);
            }
            7 if self.corpus.len() > 1 && len > 0 => {
                // Splice: the head of this input, the tail of another.
                let other = &self.corpus[rng.random_range(0..self.corpus.len())];
                if !other.is_empty() {
                    let cut = rng.random_range(0..len);
                    let from = rng.random_range(0..other.len());
                    input.truncate(cut);
                    input.extend_from_slice(&other[from..]);
                }
            }
            8 if len > 1 => {
                let keep = rng.random_range(0..len);
                input.truncate(keep);
            }
            _ if len > 0 => {
                // Nudge a byte (a length or a count off by a few).
                let i = pos(rng, len);
                let d: i8 = rng.random_range(-4..=4);
                input[i] = input[i].wrapping_add(d as u8);
            }
            _ => input.push(rng.random()),
        }
        input.truncate(MAX_INPUT);
    }
}
