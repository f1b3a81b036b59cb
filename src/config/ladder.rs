//! Ladder presets: which renditions a stream is transcoded into, read from `pipelines/*.toml`.
//!
//! A preset is data ([`LadderSpec`]): whether the source rendition (passthrough, no re-encode) is
//! offered, and a list of [`Rung`]s to encode with x264. [`LadderSpec::plan`] turns it into the
//! concrete sizes and frame rates for one source ([`PlannedRung`]).
//!
//! Errors name the file and the key, e.g. `pipelines/ladder-default.toml: rung[1].height: 721 is
//! odd`; `rung[i]` counts the `[[rung]]` tables from 0.
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The preset used when the configuration names none.
pub const DEFAULT_LADDER: &str = "default";

/// Shipped presets: (name, file as shown in errors, contents).
const BUILTIN: &[(&str, &str, &str)] = &[
    (
        "default",
        "pipelines/ladder-default.toml",
        include_str!("../../pipelines/ladder-default.toml"),
    ),
    (
        "lowcpu",
        "pipelines/ladder-lowcpu.toml",
        include_str!("../../pipelines/ladder-lowcpu.toml"),
    ),
    (
        "passthrough",
        "pipelines/passthrough.toml",
        include_str!("../../pipelines/passthrough.toml"),
    ),
];
const BUILTIN_NAMES: &[&str] = &["default", "lowcpu", "passthrough"];

/// The name of the passthrough rendition; no rung may take it.
const SOURCE_NAME: &str = "source";
const HEIGHT_RANGE: std::ops::RangeInclusive<u32> = 144..=4320;
const BITRATE_RANGE_KBPS: std::ops::RangeInclusive<u32> = 100..=50_000;
const FPS_RANGE: std::ops::RangeInclusive<u32> = 1..=120;
/// x264's own limit (`X264_THREAD_MAX`).
const MAX_X264_THREADS: u32 = 128;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The preset is malformed or breaks a rule; `key` is a path such as `rung[1].height`.
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
    #[error("cannot read ladder preset {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// Neither a built-in preset name nor a path to a `.toml` file.
    #[error(
        "unknown ladder preset {name:?}: expected one of {} or a path to a .toml file",
        BUILTIN_NAMES.join(", ")
    )]
    Unknown { name: String },
}

/// A ladder preset, as written in `pipelines/*.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderSpec {
    pub name: String,
    /// Offer the publisher's video as it arrives (no re-encode) as the `source` rendition.
    pub source: bool,
    /// Encoded renditions, largest first. Written as `[[rung]]` tables.
    #[serde(rename = "rung", default, skip_serializing_if = "Vec::is_empty")]
    pub rungs: Vec<Rung>,
    /// Rung names, the one to keep longest under CPU overload first; empty means the rung order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priority: Vec<String>,
}

/// One encoded rendition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// Rendition name: directory, playlist and element names (`enc-720p`).
    pub name: String,
    /// The target SHORT side in pixels, so portrait video gives portrait renditions.
    pub height: u32,
    /// Frame rate cap; a slower source keeps its own rate.
    pub max_fps: u32,
    pub video_bitrate_kbps: u32,
    pub x264: X264,
}

/// x264enc settings of one rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X264 {
    pub preset: Preset,
    pub tune: Tune,
    /// H.264 profile, asked for through the caps after the encoder.
    pub profile: Profile,
    /// Encoder threads; `None` or 0 lets x264 decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

/// x264enc `speed-preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
    Slow,
    Slower,
    Veryslow,
    Placebo,
}

/// x264 tuning. `zerolatency`, `fastdecode` and `stillimage` are x264enc's `tune` flags; `film`,
/// `animation`, `grain`, `psnr` and `ssim` are its `psy-tune`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tune {
    None,
    Zerolatency,
    Fastdecode,
    Stillimage,
    Film,
    Animation,
    Grain,
    Psnr,
    Ssim,
}

/// H.264 profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Baseline,
    Main,
    High,
}

impl Preset {
    /// The x264enc `speed-preset` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Ultrafast => "ultrafast",
            Preset::Superfast => "superfast",
            Preset::Veryfast => "veryfast",
            Preset::Faster => "faster",
            Preset::Fast => "fast",
            Preset::Medium => "medium",
            Preset::Slow => "slow",
            Preset::Slower => "slower",
            Preset::Veryslow => "veryslow",
            Preset::Placebo => "placebo",
        }
    }
}

impl Tune {
    pub fn as_str(self) -> &'static str {
        match self {
            Tune::None => "none",
            Tune::Zerolatency => "zerolatency",
            Tune::Fastdecode => "fastdecode",
            Tune::Stillimage => "stillimage",
            Tune::Film => "film",
            Tune::Animation => "animation",
            Tune::Grain => "grain",
            Tune::Psnr => "psnr",
            Tune::Ssim => "ssim",
        }
    }

    /// The x264enc property and value (`("tune", "zerolatency")`, `("psy-tune", "film")`);
    /// `None` for [`Tune::None`], which leaves both at their defaults.
    pub fn property(self) -> Option<(&'static str, &'static str)> {
        match self {
            Tune::None => None,
            Tune::Zerolatency | Tune::Fastdecode | Tune::Stillimage => {
                Some(("tune", self.as_str()))
            }
            Tune::Film | Tune::Animation | Tune::Grain | Tune::Psnr | Tune::Ssim => {
                Some(("psy-tune", self.as_str()))
            }
        }
    }
}

impl Profile {
    /// The `profile` field of `video/x-h264` caps.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Baseline => "baseline",
            Profile::Main => "main",
            Profile::High => "high",
        }
    }

    /// The value of the `profile` field in the `video/x-h264` caps after x264enc, which is how
    /// x264enc is asked for a profile: `main` as in `video/x-h264,profile=main`.
    pub fn caps_value(self) -> &'static str {
        self.as_str()
    }
}

impl X264 {
    /// x264enc properties as (name, value), in a stable order: `speed-preset`, then `tune` or
    /// `psy-tune`, then `threads` when set.
    pub fn properties(&self) -> Vec<(&'static str, String)> {
        let mut props = vec![("speed-preset", self.preset.as_str().to_string())];
        if let Some((name, value)) = self.tune.property() {
            props.push((name, value.to_string()));
        }
        if let Some(threads) = self.threads {
            props.push(("threads", threads.to_string()));
        }
        props
    }

    /// [`X264::properties`] as in a gst-launch description:
    /// `speed-preset=veryfast tune=zerolatency`.
    pub fn encoder_properties(&self) -> String {
        self.properties()
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What the publisher sends, as far as planning the ladder needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFormat {
    pub width: u32,
    pub height: u32,
    /// Frame rate as numerator/denominator (`(30000, 1001)`), when known.
    pub fps: Option<(i32, i32)>,
}

/// A rung resolved against one source: what to scale and encode to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRung {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Output frame rate as numerator/denominator.
    pub fps: (i32, i32),
    /// The source's rate is above this rung's cap (or unknown): frames are dropped, best before
    /// they are scaled.
    pub thins: bool,
    pub video_bitrate_kbps: u32,
    pub x264: X264,
    /// Index in the preset's priority list: 0 is kept longest, the highest is dropped first.
    pub priority: usize,
}

impl PlannedRung {
    /// The frame rate cap as videorate's integer `max-rate`: `fps` rounded up, so 30000/1001
    /// gives 30 and passes the source rate through untouched.
    pub fn max_rate(&self) -> i32 {
        let (num, den) = (i64::from(self.fps.0), i64::from(self.fps.1));
        if num <= 0 || den <= 0 {
            return 1;
        }
        i32::try_from((num + den - 1) / den).unwrap_or(i32::MAX)
    }
}

impl LadderSpec {
    /// The names [`LadderSpec::builtin`] knows.
    pub fn builtin_names() -> &'static [&'static str] {
        BUILTIN_NAMES
    }

    /// A shipped preset by name (`default`, `lowcpu`, `passthrough`); `None` for any other name.
    /// The shipped files are checked by the `every_shipped_preset_validates` test.
    pub fn builtin(name: &str) -> Option<LadderSpec> {
        let (_, file, text) = BUILTIN.iter().find(|(n, _, _)| *n == name)?;
        LadderSpec::parse(text, file).ok()
    }

    /// A built-in preset name, or a path to a `.toml` preset file. Meant for the server
    /// configuration; a name from the network should go through [`LadderSpec::builtin`] only.
    pub fn resolve(name_or_path: &str) -> Result<LadderSpec, Error> {
        if let Some((_, file, text)) = BUILTIN.iter().find(|(n, _, _)| *n == name_or_path) {
            return LadderSpec::parse(text, file);
        }
        let path = Path::new(name_or_path);
        if path.extension().is_some_and(|ext| ext == "toml") {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                file: name_or_path.to_string(),
                source,
            })?;
            return LadderSpec::parse(&text, name_or_path);
        }
        Err(Error::Unknown {
            name: name_or_path.to_string(),
        })
    }

    /// Parses and validates a preset; `file` is only used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<LadderSpec, Error> {
        let spec: LadderSpec = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
        spec.validate(file)?;
        Ok(spec)
    }

    /// Checks the rules in the module documentation; `file` is only used in error messages.
    pub fn validate(&self, file: &str) -> Result<(), Error> {
        let invalid = |key: String, message: String| Error::Invalid {
            file: file.to_string(),
            key,
            message,
        };
        if let Err(message) = check_name(&self.name) {
            return Err(invalid("name".into(), message));
        }
        if !self.source && self.rungs.is_empty() {
            return Err(invalid(
                "source".into(),
                "false and no [[rung]]: the preset has no renditions".into(),
            ));
        }
        let mut names = HashSet::new();
        for (i, rung) in self.rungs.iter().enumerate() {
            let key = |field: &str| format!("rung[{i}].{field}");
            if let Err(message) = check_name(&rung.name) {
                return Err(invalid(key("name"), message));
            }
            if rung.name == SOURCE_NAME {
                return Err(invalid(
                    key("name"),
                    "\"source\" is reserved for the passthrough rendition".into(),
                ));
            }
            if !names.insert(rung.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("{:?} is used by an earlier rung", rung.name),
                ));
            }
            if rung.height % 2 != 0 {
                return Err(invalid(key("height"), format!("{} is odd", rung.height)));
            }
            if !HEIGHT_RANGE.contains(&rung.height) {
                return Err(invalid(
                    key("height"),
                    format!("{} is outside {HEIGHT_RANGE:?}", rung.height),
                ));
            }
            if !FPS_RANGE.contains(&rung.max_fps) {
                return Err(invalid(
                    key("max_fps"),
                    format!("{} is outside {FPS_RANGE:?}", rung.max_fps),
                ));
            }
            if !BITRATE_RANGE_KBPS.contains(&rung.video_bitrate_kbps) {
                return Err(invalid(
                    key("video_bitrate_kbps"),
                    format!(
                        "{} is outside {BITRATE_RANGE_KBPS:?} kb/s",
                        rung.video_bitrate_kbps
                    ),
                ));
            }
            if let Some(threads) = rung.x264.threads
                && threads > MAX_X264_THREADS
            {
                return Err(invalid(
                    key("x264.threads"),
                    format!("{threads} is above x264's limit of {MAX_X264_THREADS}"),
                ));
            }
            if let Some(prev) = i.checked_sub(1).map(|p| &self.rungs[p]) {
                if rung.height >= prev.height {
                    return Err(invalid(
                        key("height"),
                        format!(
                            "{} is not below rung[{}].height {} (heights must strictly decrease)",
                            rung.height,
                            i - 1,
                            prev.height
                        ),
                    ));
                }
                if rung.video_bitrate_kbps >= prev.video_bitrate_kbps {
                    return Err(invalid(
                        key("video_bitrate_kbps"),
                        format!(
                            "{} is not below rung[{}].video_bitrate_kbps {} (bitrates must strictly decrease)",
                            rung.video_bitrate_kbps,
                            i - 1,
                            prev.video_bitrate_kbps
                        ),
                    ));
                }
            }
        }
        if !self.priority.is_empty() {
            let mut seen = HashSet::new();
            for (i, name) in self.priority.iter().enumerate() {
                let key = format!("priority[{i}]");
                if name == SOURCE_NAME {
                    return Err(invalid(
                        key,
                        "\"source\" is never dropped; list only rungs".into(),
                    ));
                }
                if !names.contains(name.as_str()) {
                    return Err(invalid(key, format!("{name:?} is not a rung")));
                }
                if !seen.insert(name.as_str()) {
                    return Err(invalid(key, format!("{name:?} is listed twice")));
                }
            }
            if let Some(missing) = self.rungs.iter().find(|r| !seen.contains(r.name.as_str())) {
                return Err(invalid(
                    "priority".into(),
                    format!(
                        "rung {:?} is missing (list every rung, or leave priority out)",
                        missing.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The rungs to encode for `src`, in preset order. Rungs at or above the source's short side
    /// are skipped (the `source` rendition carries that size); sizes keep the source's aspect and
    /// orientation, rounded to even; the frame rate is capped at `max_fps`, never raised.
    pub fn plan(&self, src: &SourceFormat) -> Vec<PlannedRung> {
        let portrait = src.height > src.width;
        let (short, long) = if portrait {
            (src.width, src.height)
        } else {
            (src.height, src.width)
        };
        self.rungs
            .iter()
            .enumerate()
            .filter(|(_, rung)| rung.height < short)
            .map(|(i, rung)| {
                let target_short = even(rung.height);
                let target_long = scale_even(long, rung.height, short);
                let (width, height) = if portrait {
                    (target_short, target_long)
                } else {
                    (target_long, target_short)
                };
                PlannedRung {
                    name: rung.name.clone(),
                    width,
                    height,
                    fps: capped_fps(src.fps, rung.max_fps),
                    thins: capped_fps(src.fps, rung.max_fps) != src.fps.unwrap_or((0, 1)),
                    video_bitrate_kbps: rung.video_bitrate_kbps,
                    x264: rung.x264,
                    priority: self
                        .priority
                        .iter()
                        .position(|p| *p == rung.name)
                        .unwrap_or(i),
                }
            })
            .collect()
    }
}

/// x264 settings of a rung at the source's size when the preset has no rung to borrow them from.
pub const DEFAULT_SOURCE_RUNG_X264: X264 = X264 {
    preset: Preset::Veryfast,
    tune: Tune::Zerolatency,
    profile: Profile::Main,
    threads: None,
};
/// Frame rate cap of a rung at the source's size when the preset has no rung.
pub const DEFAULT_SOURCE_RUNG_MAX_FPS: u32 = 30;
/// Bitrate of a rung at the source's size: bits per pixel of each frame (720p30 → 2.8 Mb/s, as
/// the default preset's 720p), within the bounds below.
const SOURCE_RUNG_BITS_PER_PIXEL: f64 = 0.1;
const SOURCE_RUNG_KBPS: (u32, u32) = (300, 8000);

impl LadderSpec {
    /// An H.264 rung at the source's own size, for a source that not every player can decode
    /// (H.265): named after its short side (`240p`), with the x264 settings and frame-rate cap of
    /// the preset's smallest rung (or the `DEFAULT_SOURCE_RUNG_*` ones) and about
    /// `SOURCE_RUNG_BITS_PER_PIXEL`. Kept longest under overload (priority 0).
    pub fn plan_at_source(&self, src: &SourceFormat) -> PlannedRung {
        let like = self.rungs.last();
        let max_fps = like.map_or(DEFAULT_SOURCE_RUNG_MAX_FPS, |r| r.max_fps);
        let fps = capped_fps(src.fps, max_fps);
        let (width, height) = (even(src.width), even(src.height));
        let pixels_per_s =
            f64::from(width) * f64::from(height) * f64::from(fps.0) / f64::from(fps.1);
        let kbps = (pixels_per_s * SOURCE_RUNG_BITS_PER_PIXEL / 1000.0).round() as u32;
        PlannedRung {
            name: format!("{}p", width.min(height)),
            width,
            height,
            fps,
            thins: fps != src.fps.unwrap_or((0, 1)),
            video_bitrate_kbps: kbps.clamp(SOURCE_RUNG_KBPS.0, SOURCE_RUNG_KBPS.1),
            x264: like.map_or(DEFAULT_SOURCE_RUNG_X264, |r| r.x264),
            priority: 0,
        }
    }
}

/// Frames in one segment at `fps`, rounded, at least 1: x264enc's `key-int-max` so that every
/// rung has a keyframe at each segment boundary. A non-positive fps gives 1.
pub fn keyframe_interval_frames(fps: (i32, i32), segment: Duration) -> u32 {
    let (num, den) = fps;
    if num <= 0 || den <= 0 {
        return 1;
    }
    // segment * num / den, rounded half up, in nanoseconds to stay exact.
    let numerator = segment.as_nanos() * num as u128;
    let denominator = den as u128 * 1_000_000_000;
    let frames = (2 * numerator + denominator) / (2 * denominator);
    u32::try_from(frames).unwrap_or(u32::MAX).max(1)
}

/// Names are lowercase `[a-z0-9_-]`, not empty.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "{name:?} must use only lowercase letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

/// `value` rounded to the nearest even number, at least 2.
fn even(value: u32) -> u32 {
    scale_even(value, 1, 1)
}

/// `value * num / den` rounded to the nearest even number, at least 2.
fn scale_even(value: u32, num: u32, den: u32) -> u32 {
    let (value, num, den) = (u64::from(value), u64::from(num), u64::from(den.max(1)));
    // round(value * num / (2 * den)) * 2, rounding half up.
    let halves = (value * num + den) / (2 * den);
    u32::try_from(halves * 2).unwrap_or(u32::MAX - 1).max(2)
}

/// The source frame rate when it is at most `max_fps`, else `max_fps/1`; `max_fps/1` when unknown.
fn capped_fps(src: Option<(i32, i32)>, max_fps: u32) -> (i32, i32) {
    let max = i32::try_from(max_fps).unwrap_or(i32::MAX);
    match src {
        Some((num, den))
            if num > 0 && den > 0 && i64::from(num) <= i64::from(max) * i64::from(den) =>
        {
            (num, den)
        }
        _ => (max, 1),
    }
}

/// A TOML or serde error as [`Error::Invalid`], with the key recovered from the error's position
/// (`rung[1].x264.preset`) and the line number added to the message.
fn toml_error(text: &str, file: &str, error: &toml::de::Error) -> Error {
    let message = error.message().trim().to_string();
    let (key, message) = match error.span() {
        // An empty span at the start is the document itself (a top-level field is missing).
        Some(span) if !span.is_empty() || span.start > 0 => {
            let offset = span.start.min(text.len());
            let line = text[..offset].matches('\n').count() + 1;
            (
                key_at(text, offset, &message),
                format!("{message} (line {line})"),
            )
        }
        _ => (
            backticked_field(&message).unwrap_or_else(|| "(document)".to_string()),
            message,
        ),
    };
    Error::Invalid {
        file: file.to_string(),
        key,
        message,
    }
}

/// The key path of what a TOML or serde error at `offset` is about, from the table headers
/// before it and the line it is on.
fn key_at(text: &str, offset: usize, message: &str) -> String {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let column = offset - line_start;
    let field = backticked_field(message);
    let missing = message.starts_with("missing field");

    let mut headers = Headers::default();
    let mut table: Vec<String> = Vec::new();
    for before in text[..line_start].lines() {
        if let Some((segments, is_array, _)) = parse_header(before) {
            headers.see(&segments, is_array);
            table = segments;
        }
    }
    let mut path = match parse_header(line) {
        // A field missing from the table this header opens.
        Some((segments, is_array, _)) if missing => {
            headers.see(&segments, is_array);
            let mut path = headers.render(&segments);
            path.extend(field);
            path
        }
        // The header itself is wrong (an unknown table, a table where a value belongs): the key
        // is the header up to the segment at `offset`.
        Some((segments, _, open)) => {
            let depth = line
                .get(open..column.max(open))
                .map_or(0, |s| s.matches('.').count())
                .min(segments.len().saturating_sub(1));
            let mut path = headers.render(&segments[..depth]);
            path.extend(segments.get(depth).cloned());
            path
        }
        None => {
            let mut path = headers.render(&table);
            path.extend(inline_keys(&line[..column]));
            path.extend(field);
            path
        }
    };
    path.retain(|k| !k.is_empty());
    if path.is_empty() {
        "(document)".to_string()
    } else {
        path.join(".")
    }
}

/// The field named in serde's "unknown field `x`" and "missing field `x`" messages.
fn backticked_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    Some(rest[..rest.find('`')?].to_string())
}

/// `[[array]]` table headers seen so far, with how many times each was seen.
#[derive(Default)]
struct Headers {
    arrays: Vec<(String, usize)>,
}

impl Headers {
    /// Records a header.
    fn see(&mut self, segments: &[String], is_array: bool) {
        if is_array {
            let path = segments.join(".");
            match self.arrays.iter_mut().find(|(p, _)| *p == path) {
                Some((_, count)) => *count += 1,
                None => self.arrays.push((path, 1)),
            }
        }
    }

    /// `segments` as a key path, each array table followed by the index of its latest element:
    /// `rung[1].x264`.
    fn render(&self, segments: &[String]) -> Vec<String> {
        (0..segments.len())
            .map(|depth| {
                let path = segments[..=depth].join(".");
                match self.arrays.iter().find(|(p, _)| *p == path) {
                    Some((_, count)) => format!("{}[{}]", segments[depth], count - 1),
                    None => segments[depth].clone(),
                }
            })
            .collect()
    }
}

/// A header line (`[a.b]`, `[[a]]`, with an optional comment) as (segments, is_array, offset of
/// the header text within the line).
fn parse_header(line: &str) -> Option<(Vec<String>, bool, usize)> {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    let (inner, is_array, open) = if let Some(rest) = trimmed.strip_prefix("[[") {
        (rest.split("]]").next()?, true, 2)
    } else if let Some(rest) = trimmed.strip_prefix('[') {
        (rest.split(']').next()?, false, 1)
    } else {
        return None;
    };
    let segments = inner.split('.').map(unquote).collect();
    Some((segments, is_array, indent + open))
}

fn unquote(key: &str) -> String {
    key.trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string()
}

/// Keys leading to `offset` within one `key = value` line, through inline tables: for
/// `x264 = { preset = "fastest" }` at the value, `["x264", "preset"]`; at a key, the enclosing
/// inline tables only.
fn inline_keys(prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut brackets: Vec<char> = Vec::new();
    let mut pending: Option<String> = None;
    let mut token_start = 0;
    let mut quote: Option<char> = None;
    for (i, c) in prefix.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '=' if pending.is_none() => pending = Some(unquote(&prefix[token_start..i])),
            '{' => {
                brackets.push('{');
                keys.push(pending.take().unwrap_or_default());
                token_start = i + 1;
            }
            '}' => {
                brackets.pop();
                keys.pop();
            }
            '[' => brackets.push('['),
            ']' => {
                brackets.pop();
            }
            ',' if brackets.last() != Some(&'[') => {
                pending = None;
                token_start = i + 1;
            }
            _ => {}
        }
    }
    keys.extend(pending);
    keys.retain(|k| !k.is_empty());
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "test.toml";

    fn parse(text: &str) -> Result<LadderSpec, Error> {
        LadderSpec::parse(text, FILE)
    }

    /// Parses `text`, expects it refused, and returns (key, full message).
    fn refused(text: &str) -> (String, String) {
        match parse(text) {
            Ok(spec) => panic!("accepted: {spec:?}"),
            Err(e @ Error::Invalid { .. }) => {
                let shown = e.to_string();
                let Error::Invalid { file, key, .. } = e else {
                    unreachable!()
                };
                assert_eq!(file, FILE);
                assert!(shown.starts_with(&format!("{FILE}: {key}: ")), "{shown}");
                (key, shown)
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    fn rung_toml(name: &str, height: u32, kbps: u32) -> String {
        format!(
            "[[rung]]\nname = \"{name}\"\nheight = {height}\nmax_fps = 30\nvideo_bitrate_kbps = {kbps}\n\
             [rung.x264]\npreset = \"veryfast\"\ntune = \"zerolatency\"\nprofile = \"main\"\n"
        )
    }

    /// A valid three-rung preset with `extra` top-level lines.
    fn three_rungs(extra: &str) -> String {
        format!(
            "name = \"t\"\nsource = true\n{extra}\n{}{}{}",
            rung_toml("720p", 720, 2800),
            rung_toml("480p", 480, 1400),
            rung_toml("360p", 360, 800)
        )
    }

    fn default_spec() -> LadderSpec {
        LadderSpec::builtin("default").expect("default preset")
    }

    #[test]
    fn every_shipped_preset_validates() {
        assert_eq!(
            LadderSpec::builtin_names(),
            ["default", "lowcpu", "passthrough"]
        );
        let table: Vec<_> = BUILTIN.iter().map(|(name, _, _)| *name).collect();
        assert_eq!(table, LadderSpec::builtin_names());
        assert!(LadderSpec::builtin_names().contains(&DEFAULT_LADDER));
        for (name, file, text) in BUILTIN {
            let spec = LadderSpec::parse(text, file).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(spec.name, *name, "{file}");
            assert_eq!(LadderSpec::builtin(name), Some(spec.clone()));
            assert_eq!(LadderSpec::resolve(name).unwrap(), spec);
            // The files on disk are the ones embedded.
            let on_disk =
                std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
            assert_eq!(on_disk, *text, "{file}");
        }
        assert_eq!(LadderSpec::builtin("nope"), None);
    }

    #[test]
    fn shipped_presets_have_the_documented_rungs() {
        let summary = |name: &str| {
            let spec = LadderSpec::builtin(name).unwrap();
            let rungs: Vec<_> = spec
                .rungs
                .iter()
                .map(|r| (r.name.clone(), r.height, r.max_fps, r.video_bitrate_kbps))
                .collect();
            (spec.source, rungs)
        };
        let r = |n: &str, h, k| (n.to_string(), h, 30, k);
        assert_eq!(
            summary("default"),
            (
                true,
                vec![
                    r("720p", 720, 2800),
                    r("480p", 480, 1400),
                    r("360p", 360, 800)
                ]
            )
        );
        assert_eq!(summary("lowcpu"), (true, vec![r("480p", 480, 1400)]));
        assert_eq!(summary("passthrough"), (true, vec![]));
        let x264 = default_spec().rungs[0].x264;
        assert_eq!(
            x264,
            X264 {
                preset: Preset::Veryfast,
                tune: Tune::Zerolatency,
                profile: Profile::Main,
                threads: None
            }
        );
        assert_eq!(default_spec().priority, ["720p", "480p", "360p"]);
    }

    #[test]
    fn resolve_reads_a_toml_path_and_refuses_unknown_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(&path, three_rungs("")).unwrap();
        let spec = LadderSpec::resolve(path.to_str().unwrap()).unwrap();
        assert_eq!(spec.rungs.len(), 3);

        let missing = dir.path().join("absent.toml");
        let e = LadderSpec::resolve(missing.to_str().unwrap()).unwrap_err();
        assert!(matches!(e, Error::Read { .. }), "{e}");
        assert!(e.to_string().contains("absent.toml"), "{e}");

        std::fs::write(
            &path,
            three_rungs("").replace("height = 480", "height = 481"),
        )
        .unwrap();
        let e = LadderSpec::resolve(path.to_str().unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: rung[1].height: 481 is odd", path.display())
        );

        let e = LadderSpec::resolve("fancy").unwrap_err();
        assert!(matches!(e, Error::Unknown { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "unknown ladder preset \"fancy\": expected one of default, lowcpu, passthrough or a path to a .toml file"
        );
    }

    #[test]
    fn odd_height_is_refused_with_file_and_key() {
        let text = three_rungs("").replace("height = 480", "height = 721");
        let e = LadderSpec::parse(&text, "pipelines/ladder-default.toml").unwrap_err();
        // 721 is also not below 720; oddness is reported first.
        assert_eq!(
            e.to_string(),
            "pipelines/ladder-default.toml: rung[1].height: 721 is odd"
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let (key, msg) = refused(&three_rungs("colour = \"red\""));
        assert_eq!(key, "colour");
        assert!(msg.contains("unknown field `colour`"), "{msg}");
        assert!(msg.contains("(line 3)"), "{msg}");

        let text = three_rungs("").replacen("max_fps = 30\n", "max_fps = 30\nfps = 25\n", 2);
        let (key, _) = refused(&text);
        assert_eq!(key, "rung[0].fps");

        let text = three_rungs("").replace("name = \"360p\"\n", "name = \"360p\"\nbitrate = 1\n");
        assert_eq!(refused(&text).0, "rung[2].bitrate");

        let text = three_rungs("").replace(
            "video_bitrate_kbps = 1400\n[rung.x264]\n",
            "video_bitrate_kbps = 1400\n[rung.x264]\nlevel = \"4.1\"\n",
        );
        assert_eq!(refused(&text).0, "rung[1].x264.level");

        // A misspelt table name is an unknown top-level key.
        let text = three_rungs("")
            .replace("[[rung]]", "[[rungs]]")
            .replace("[rung.x264]", "[rungs.x264]");
        assert_eq!(refused(&text).0, "rungs");
    }

    #[test]
    fn wrong_tables_and_inline_tables_are_refused_with_their_path() {
        const TOP: &str = "name = \"t\"\nsource = true\n";
        const RUNG: &str =
            "[[rung]]\nname = \"a\"\nheight = 240\nmax_fps = 30\nvideo_bitrate_kbps = 400\n";
        let cases = [
            // An unknown table, and an unknown table under a rung.
            (
                format!("{TOP}[extra]\na = 1\n"),
                "extra",
                "unknown field `extra`",
            ),
            (
                format!("{TOP}{RUNG}[rung.x265]\npreset = \"veryfast\"\n"),
                "rung[0].x265",
                "unknown field `x265`",
            ),
            // `[rung]` where `[[rung]]` belongs.
            (
                format!("{TOP}[rung]\nname = \"a\"\n"),
                "rung",
                "invalid type: map, expected a sequence",
            ),
            // Inline tables and dotted keys.
            (
                format!(
                    "{TOP}{RUNG}x264 = {{ preset = \"fastest\", tune = \"none\", profile = \"main\" }}\n"
                ),
                "rung[0].x264.preset",
                "unknown variant `fastest`",
            ),
            (
                format!(
                    "{TOP}{RUNG}x264 = {{ preset = \"fast\", tune = \"none\", profile = \"main\", crf = 1 }}\n"
                ),
                "rung[0].x264.crf",
                "unknown field `crf`",
            ),
            (
                format!("{TOP}{RUNG}x264 = {{ preset = \"fast\", profile = \"main\" }}\n"),
                "rung[0].x264.tune",
                "missing field `tune`",
            ),
            (
                format!("{TOP}{RUNG}x264.preset = \"fast\"\nx264.tune = \"bad\"\n"),
                "rung[0].x264.tune",
                "unknown variant `bad`",
            ),
            (
                format!("{TOP}priority = [\"a\", 3]\n"),
                "priority",
                "invalid type: integer `3`, expected a string",
            ),
            // A top-level field missing from a file that starts with a rung.
            (
                format!(
                    "{RUNG}x264 = {{ preset = \"fast\", tune = \"none\", profile = \"main\" }}\n"
                ),
                "name",
                "missing field `name`",
            ),
        ];
        for (text, key, says) in cases {
            let (got, msg) = refused(&text);
            assert_eq!(got, key, "{text}\n{msg}");
            assert!(msg.contains(says), "{text}\n{msg}");
        }
    }

    #[test]
    fn missing_fields_are_refused_with_their_path() {
        assert_eq!(
            refused(&three_rungs("").replace("name = \"t\"\n", "")).0,
            "name"
        );
        assert_eq!(
            refused(&three_rungs("").replace("source = true\n", "")).0,
            "source"
        );
        let text = three_rungs("").replace("height = 480\n", "");
        let (key, msg) = refused(&text);
        assert_eq!(key, "rung[1].height");
        assert!(msg.contains("missing field `height`"), "{msg}");
        let text = three_rungs("").replace("video_bitrate_kbps = 800\n", "");
        assert_eq!(refused(&text).0, "rung[2].video_bitrate_kbps");
        let text = three_rungs("").replacen("preset = \"veryfast\"\n", "", 1);
        assert_eq!(refused(&text).0, "rung[0].x264.preset");
        let text = three_rungs("").replacen(
            "[rung.x264]\npreset = \"veryfast\"\ntune = \"zerolatency\"\nprofile = \"main\"\n",
            "",
            1,
        );
        assert_eq!(refused(&text).0, "rung[0].x264");
    }

    #[test]
    fn wrong_types_and_unknown_encoder_values_are_refused_with_their_path() {
        let (key, msg) = refused(&three_rungs("").replace("height = 480", "height = \"480\""));
        assert_eq!(key, "rung[1].height");
        assert!(msg.contains("invalid type"), "{msg}");
        let (key, msg) = refused(&three_rungs("").replacen("\"veryfast\"", "\"fastest\"", 1));
        assert_eq!(key, "rung[0].x264.preset");
        assert!(msg.contains("unknown variant `fastest`"), "{msg}");
        let text = three_rungs("").replacen("\"zerolatency\"", "\"lowlatency\"", 2);
        assert_eq!(refused(&text).0, "rung[0].x264.tune");
        let text = three_rungs("").replace("\"main\"", "\"high10\"");
        assert_eq!(refused(&text).0, "rung[0].x264.profile");
        assert_eq!(
            refused(&three_rungs("").replace("height = 360", "height = -360")).0,
            "rung[2].height"
        );
        let (key, _) = refused("name = \"t\"\nsource = true\nrung = 3\n");
        assert_eq!(key, "rung");
        let (key, msg) = refused("name = \"t\"\nsource = tru\n");
        assert_eq!(key, "source");
        assert!(msg.contains("(line 2)"), "{msg}");
    }

    #[test]
    fn bad_names_are_refused() {
        for (from, to, key) in [
            ("name = \"t\"", "name = \"\"", "name"),
            ("name = \"t\"", "name = \"Default\"", "name"),
            ("name = \"480p\"", "name = \"\"", "rung[1].name"),
            ("name = \"480p\"", "name = \"480P\"", "rung[1].name"),
            ("name = \"480p\"", "name = \"480 p\"", "rung[1].name"),
            ("name = \"480p\"", "name = \"../x\"", "rung[1].name"),
            ("name = \"480p\"", "name = \"source\"", "rung[1].name"),
            ("name = \"480p\"", "name = \"720p\"", "rung[1].name"),
        ] {
            let (got, msg) = refused(&three_rungs("").replace(from, to));
            assert_eq!(got, key, "{to}: {msg}");
        }
        let (_, msg) = refused(&three_rungs("").replace("name = \"480p\"", "name = \"720p\""));
        assert!(msg.contains("\"720p\" is used by an earlier rung"), "{msg}");
        let (_, msg) = refused(&three_rungs("").replace("name = \"480p\"", "name = \"source\""));
        assert!(msg.contains("reserved"), "{msg}");
    }

    #[test]
    fn sizes_bitrates_and_frame_rates_out_of_range_or_order_are_refused() {
        let base = three_rungs("");
        for (from, to, key, says) in [
            (
                "height = 360",
                "height = 361",
                "rung[2].height",
                "361 is odd",
            ),
            (
                "height = 360",
                "height = 142",
                "rung[2].height",
                "142 is outside 144..=4320",
            ),
            (
                "height = 720",
                "height = 4322",
                "rung[0].height",
                "4322 is outside",
            ),
            (
                "height = 360",
                "height = 480",
                "rung[2].height",
                "480 is not below rung[1].height 480",
            ),
            (
                "height = 360",
                "height = 600",
                "rung[2].height",
                "heights must strictly decrease",
            ),
            (
                "video_bitrate_kbps = 800",
                "video_bitrate_kbps = 1400",
                "rung[2].video_bitrate_kbps",
                "1400 is not below rung[1].video_bitrate_kbps 1400",
            ),
            (
                "video_bitrate_kbps = 1400",
                "video_bitrate_kbps = 3000",
                "rung[1].video_bitrate_kbps",
                "bitrates must strictly decrease",
            ),
            (
                "video_bitrate_kbps = 800",
                "video_bitrate_kbps = 99",
                "rung[2].video_bitrate_kbps",
                "99 is outside 100..=50000 kb/s",
            ),
            (
                "video_bitrate_kbps = 2800",
                "video_bitrate_kbps = 50001",
                "rung[0].video_bitrate_kbps",
                "50001 is outside",
            ),
        ] {
            let (got, msg) = refused(&base.replace(from, to));
            assert_eq!(got, key, "{to}: {msg}");
            assert!(msg.contains(says), "{to}: {msg}");
        }
        let fps = |n: u32| base.replacen("max_fps = 30", &format!("max_fps = {n}"), 1);
        let (key, msg) = refused(&fps(0));
        assert_eq!(key, "rung[0].max_fps");
        assert!(msg.ends_with("0 is outside 1..=120"), "{msg}");
        assert_eq!(refused(&fps(121)).0, "rung[0].max_fps");
        parse(&fps(120)).unwrap();
        // Range edges are accepted.
        parse(&base.replace("height = 360", "height = 144")).unwrap();
        parse(&base.replace("video_bitrate_kbps = 800", "video_bitrate_kbps = 100")).unwrap();
        let text = base.replacen(
            "profile = \"main\"\n",
            "profile = \"main\"\nthreads = 129\n",
            1,
        );
        assert_eq!(refused(&text).0, "rung[0].x264.threads");
    }

    #[test]
    fn a_preset_with_no_renditions_is_refused() {
        let (key, msg) = refused("name = \"empty\"\nsource = false\n");
        assert_eq!(key, "source");
        assert!(msg.contains("no renditions"), "{msg}");
        // Rungs without the source rendition are fine.
        parse(&three_rungs("").replace("source = true", "source = false")).unwrap();
    }

    #[test]
    fn priority_must_list_every_rung_once() {
        parse(&three_rungs("priority = [\"360p\", \"720p\", \"480p\"]")).unwrap();
        for (priority, key, says) in [
            (
                "[\"720p\", \"480p\"]",
                "priority",
                "rung \"360p\" is missing",
            ),
            (
                "[\"720p\", \"480p\", \"360p\", \"240p\"]",
                "priority[3]",
                "\"240p\" is not a rung",
            ),
            (
                "[\"720p\", \"480p\", \"480p\", \"360p\"]",
                "priority[2]",
                "\"480p\" is listed twice",
            ),
            (
                "[\"source\", \"720p\", \"480p\", \"360p\"]",
                "priority[0]",
                "never dropped",
            ),
        ] {
            let (got, msg) = refused(&three_rungs(&format!("priority = {priority}")));
            assert_eq!(got, key, "{priority}: {msg}");
            assert!(msg.contains(says), "{priority}: {msg}");
        }
        let (key, _) = refused("name = \"p\"\nsource = true\npriority = [\"720p\"]\n");
        assert_eq!(key, "priority[0]");
    }

    fn landscape(width: u32, height: u32) -> SourceFormat {
        SourceFormat {
            width,
            height,
            fps: Some((30, 1)),
        }
    }

    fn sizes(plan: &[PlannedRung]) -> Vec<(&str, u32, u32)> {
        plan.iter()
            .map(|r| (r.name.as_str(), r.width, r.height))
            .collect()
    }

    #[test]
    fn a_1080p_source_gets_every_default_rung() {
        let plan = default_spec().plan(&landscape(1920, 1080));
        assert_eq!(
            sizes(&plan),
            [("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360)]
        );
        let first = &plan[0];
        assert_eq!(first.fps, (30, 1));
        assert_eq!(first.video_bitrate_kbps, 2800);
        assert_eq!(first.x264, default_spec().rungs[0].x264);
        assert_eq!(
            plan.iter().map(|r| r.priority).collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }

    #[test]
    fn rungs_at_or_above_the_source_size_are_skipped() {
        let spec = default_spec();
        assert_eq!(
            sizes(&spec.plan(&landscape(1280, 720))),
            [("480p", 854, 480), ("360p", 640, 360)]
        );
        assert_eq!(sizes(&spec.plan(&landscape(640, 360))), []);
        assert_eq!(sizes(&spec.plan(&landscape(0, 0))), []);
        assert_eq!(
            sizes(&spec.plan(&landscape(3840, 2160))),
            [("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360)]
        );
        let passthrough = LadderSpec::builtin("passthrough").unwrap();
        assert_eq!(passthrough.plan(&landscape(1920, 1080)), []);
    }

    #[test]
    fn portrait_sources_get_portrait_rungs() {
        let spec = parse(&format!(
            "name = \"p\"\nsource = true\n{}{}",
            rung_toml("480p", 480, 1400),
            rung_toml("240p", 240, 400)
        ))
        .unwrap();
        let phone = SourceFormat {
            width: 360,
            height: 640,
            fps: Some((30, 1)),
        };
        let plan = spec.plan(&phone);
        assert_eq!(sizes(&plan), [("240p", 240, 426)]);
        assert!(plan.iter().all(|r| r.width < r.height));
        // The default ladder has nothing below a 360-wide portrait source.
        assert_eq!(default_spec().plan(&phone), []);

        let hd_phone = SourceFormat {
            width: 720,
            height: 1280,
            fps: None,
        };
        assert_eq!(
            sizes(&default_spec().plan(&hd_phone)),
            [("480p", 480, 854), ("360p", 360, 640)]
        );
        let full_hd_phone = SourceFormat {
            width: 1080,
            height: 1920,
            fps: None,
        };
        assert_eq!(
            sizes(&default_spec().plan(&full_hd_phone)),
            [("720p", 720, 1280), ("480p", 480, 854), ("360p", 360, 640)]
        );
    }

    #[test]
    fn odd_source_sizes_give_even_rungs() {
        assert_eq!(
            sizes(&default_spec().plan(&landscape(1366, 768))),
            [("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360)]
        );
        // 4:3 with an odd width, and an odd height.
        assert_eq!(
            sizes(&default_spec().plan(&landscape(1023, 767))),
            [("720p", 960, 720), ("480p", 640, 480), ("360p", 480, 360)]
        );
        for plan in [
            default_spec().plan(&landscape(1366, 768)),
            default_spec().plan(&landscape(1001, 751)),
            default_spec().plan(&landscape(2000, 721)),
        ] {
            for r in &plan {
                assert!(
                    r.width % 2 == 0 && r.height % 2 == 0 && r.width > 0,
                    "{r:?}"
                );
            }
        }
        // A very tall strip never gets a zero side.
        let strip = SourceFormat {
            width: 2,
            height: 4000,
            fps: None,
        };
        assert_eq!(default_spec().plan(&strip), []);
        let strip = SourceFormat {
            width: 4000,
            height: 1000,
            fps: None,
        };
        assert_eq!(sizes(&default_spec().plan(&strip))[0], ("720p", 2880, 720));
        assert_eq!(scale_even(1, 144, 4320), 2);
        assert_eq!(even(0), 2);
    }

    #[test]
    fn frame_rate_is_capped_and_never_raised() {
        let spec = parse(&format!(
            "name = \"f\"\nsource = true\n{}{}",
            rung_toml("720p", 720, 2800),
            rung_toml("360p", 360, 800).replace("max_fps = 30", "max_fps = 15")
        ))
        .unwrap();
        let fps_of = |fps: Option<(i32, i32)>| {
            spec.plan(&SourceFormat {
                width: 1920,
                height: 1080,
                fps,
            })
            .iter()
            .map(|r| r.fps)
            .collect::<Vec<_>>()
        };
        assert_eq!(fps_of(Some((30000, 1001))), [(30000, 1001), (15, 1)]);
        assert_eq!(fps_of(Some((60, 1))), [(30, 1), (15, 1)]);
        assert_eq!(fps_of(Some((60000, 1001))), [(30, 1), (15, 1)]);
        assert_eq!(fps_of(Some((30, 1))), [(30, 1), (15, 1)]);
        assert_eq!(fps_of(Some((25, 1))), [(25, 1), (15, 1)]);
        assert_eq!(fps_of(Some((12, 1))), [(12, 1), (12, 1)]);
        assert_eq!(fps_of(None), [(30, 1), (15, 1)]);
        // Nonsense rates from a publisher count as unknown.
        assert_eq!(fps_of(Some((0, 1))), [(30, 1), (15, 1)]);
        assert_eq!(fps_of(Some((30, 0))), [(30, 1), (15, 1)]);
        assert_eq!(fps_of(Some((-30, 1))), [(30, 1), (15, 1)]);

        // Rungs that drop frames (the cap is below the source's rate, or the rate is unknown).
        let thins_of = |fps: Option<(i32, i32)>| {
            spec.plan(&SourceFormat {
                width: 1920,
                height: 1080,
                fps,
            })
            .iter()
            .map(|r| r.thins)
            .collect::<Vec<_>>()
        };
        assert_eq!(thins_of(Some((30, 1))), [false, true]);
        assert_eq!(thins_of(Some((30000, 1001))), [false, true]);
        assert_eq!(thins_of(Some((60, 1))), [true, true]);
        assert_eq!(thins_of(Some((12, 1))), [false, false]);
        assert_eq!(thins_of(None), [true, true]);
    }

    #[test]
    fn max_rate_rounds_the_frame_rate_up() {
        let rung = |fps| PlannedRung {
            name: "r".into(),
            width: 640,
            height: 360,
            fps,
            thins: false,
            video_bitrate_kbps: 800,
            x264: default_spec().rungs[0].x264,
            priority: 0,
        };
        assert_eq!(rung((30, 1)).max_rate(), 30);
        assert_eq!(rung((30000, 1001)).max_rate(), 30);
        assert_eq!(rung((24000, 1001)).max_rate(), 24);
        assert_eq!(rung((25, 2)).max_rate(), 13);
        assert_eq!(rung((0, 1)).max_rate(), 1);
    }

    #[test]
    fn planned_rungs_carry_their_priority() {
        let spec = parse(&three_rungs("priority = [\"480p\", \"360p\", \"720p\"]")).unwrap();
        let plan = spec.plan(&landscape(1920, 1080));
        let order: Vec<_> = plan.iter().map(|r| (r.name.as_str(), r.priority)).collect();
        assert_eq!(order, [("720p", 2), ("480p", 0), ("360p", 1)]);
        // Skipped rungs leave the others' priorities as written.
        let plan = spec.plan(&landscape(1280, 720));
        let order: Vec<_> = plan.iter().map(|r| (r.name.as_str(), r.priority)).collect();
        assert_eq!(order, [("480p", 0), ("360p", 1)]);
        // Without a priority list, the rung order.
        let plan = parse(&three_rungs(""))
            .unwrap()
            .plan(&landscape(1920, 1080));
        let order: Vec<_> = plan.iter().map(|r| r.priority).collect();
        assert_eq!(order, [0, 1, 2]);
    }

    #[test]
    fn keyframe_interval_is_one_segment_of_frames() {
        let two_s = Duration::from_secs(2);
        assert_eq!(keyframe_interval_frames((30, 1), two_s), 60);
        assert_eq!(keyframe_interval_frames((30000, 1001), two_s), 60);
        assert_eq!(keyframe_interval_frames((25, 1), two_s), 50);
        assert_eq!(
            keyframe_interval_frames((60, 1), Duration::from_millis(500)),
            30
        );
        assert_eq!(
            keyframe_interval_frames((24000, 1001), Duration::from_secs(6)),
            144
        );
        assert_eq!(
            keyframe_interval_frames((15, 1), Duration::from_millis(1500)),
            23
        );
        assert_eq!(keyframe_interval_frames((30, 1), Duration::ZERO), 1);
        assert_eq!(keyframe_interval_frames((1, 10), two_s), 1);
        assert_eq!(keyframe_interval_frames((0, 1), two_s), 1);
        assert_eq!(keyframe_interval_frames((30, -1), two_s), 1);
    }

    #[test]
    fn encoder_settings_map_to_gstreamer_values() {
        let x264 = default_spec().rungs[0].x264;
        assert_eq!(
            x264.properties(),
            [
                ("speed-preset", "veryfast".to_string()),
                ("tune", "zerolatency".to_string())
            ]
        );
        assert_eq!(
            x264.encoder_properties(),
            "speed-preset=veryfast tune=zerolatency"
        );
        assert_eq!(x264.profile.caps_value(), "main");
        let film = X264 {
            preset: Preset::Medium,
            tune: Tune::Film,
            profile: Profile::High,
            threads: Some(2),
        };
        assert_eq!(
            film.encoder_properties(),
            "speed-preset=medium psy-tune=film threads=2"
        );
        assert_eq!(film.profile.caps_value(), "high");
        let plain = X264 {
            tune: Tune::None,
            threads: None,
            ..film
        };
        assert_eq!(plain.encoder_properties(), "speed-preset=medium");
        // The serde names are the GStreamer names.
        for preset in [
            Preset::Ultrafast,
            Preset::Superfast,
            Preset::Veryfast,
            Preset::Faster,
            Preset::Fast,
            Preset::Medium,
            Preset::Slow,
            Preset::Slower,
            Preset::Veryslow,
            Preset::Placebo,
        ] {
            let text = format!("\"{}\"", preset.as_str());
            assert_eq!(toml::Value::try_from(preset).unwrap().to_string(), text);
        }
        for tune in [
            Tune::None,
            Tune::Zerolatency,
            Tune::Fastdecode,
            Tune::Stillimage,
            Tune::Film,
            Tune::Animation,
            Tune::Grain,
            Tune::Psnr,
            Tune::Ssim,
        ] {
            let text = format!("\"{}\"", tune.as_str());
            assert_eq!(toml::Value::try_from(tune).unwrap().to_string(), text);
        }
        for profile in [Profile::Baseline, Profile::Main, Profile::High] {
            let text = format!("\"{}\"", profile.as_str());
            assert_eq!(toml::Value::try_from(profile).unwrap().to_string(), text);
        }
    }

    #[test]
    fn a_preset_round_trips_through_toml() {
        for name in LadderSpec::builtin_names() {
            let spec = LadderSpec::builtin(name).unwrap();
            let text = toml::to_string(&spec).unwrap();
            assert_eq!(parse(&text).unwrap(), spec, "{text}");
        }
    }
}
