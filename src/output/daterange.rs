//! `EXT-X-DATERANGE` markers (RFC 8216 §4.3.2.7): spans of a stream's `PROGRAM-DATE-TIME` timeline
//! with attributes, e.g. the product the host had in focus. hls.js turns them into metadata cues,
//! Safari into `DataCue`s.
//!
//! m3u8-rs models one DATERANGE per segment and writes attributes from a `HashMap` (in random
//! order), so markers are written and read here: stable attribute order, dates in the same
//! millisecond format as `EXT-X-PROGRAM-DATE-TIME`, any number per segment.
use chrono::{DateTime, SecondsFormat, Utc};

const TAG: &str = "#EXT-X-DATERANGE:";

/// One date range. Its `id` is unique in the stream; it is written again on every reload with the
/// same attributes, plus `END-DATE`/`DURATION` once it has ended (RFC 8216 §4.3.2.7.1 allows
/// adding attributes, not changing them).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub id: String,
    pub class: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    /// Client attributes (`X-` names), written as quoted strings in this order.
    pub attributes: Vec<(String, String)>,
}

fn date(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `d` without its sub-millisecond part (what [`date`] writes).
fn whole_millis(d: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(d.timestamp_millis()).unwrap_or(d)
}

/// A quoted-string attribute value (RFC 8216 §4.2): no double quote, CR or LF.
fn quoted(value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    format!("\"{clean}\"")
}

impl Marker {
    /// The tag's attribute list (what follows `#EXT-X-DATERANGE:`).
    pub fn attribute_list(&self) -> String {
        let mut out = format!(
            "ID={},CLASS={},START-DATE={}",
            quoted(&self.id),
            quoted(&self.class),
            quoted(&date(self.start))
        );
        if let Some(end) = self.end {
            // Both dates as written (whole milliseconds), so that END-DATE is START-DATE plus
            // DURATION exactly (RFC 8216 §4.3.2.7), whatever fractions the two had.
            let start = whole_millis(self.start);
            let end = whole_millis(end).max(start);
            let millis = (end - start).num_milliseconds();
            out.push_str(&format!(
                ",END-DATE={},DURATION={}.{:03}",
                quoted(&date(end)),
                millis / 1000,
                millis % 1000
            ));
        }
        for (name, value) in &self.attributes {
            out.push_str(&format!(",{name}={}", quoted(value)));
        }
        out
    }

    /// The whole tag line, without its newline.
    pub fn line(&self) -> String {
        format!("{TAG}{}", self.attribute_list())
    }

    /// Reads a marker back from a tag line written by [`Marker::line`]; `None` for another line or
    /// a date range without the attributes a marker needs (ID, CLASS, START-DATE).
    pub fn parse_line(line: &str) -> Option<Marker> {
        let list = line.strip_prefix(TAG)?;
        let mut marker = Marker {
            id: String::new(),
            class: String::new(),
            start: DateTime::<Utc>::MIN_UTC,
            end: None,
            attributes: Vec::new(),
        };
        let (mut id, mut class, mut start) = (None, None, None);
        for (name, value) in attributes(list)? {
            let parse_date = |v: &str| {
                DateTime::parse_from_rfc3339(v)
                    .ok()
                    .map(|d| d.with_timezone(&Utc))
            };
            match name {
                "ID" => id = Some(value.to_string()),
                "CLASS" => class = Some(value.to_string()),
                "START-DATE" => start = parse_date(value),
                "END-DATE" => marker.end = parse_date(value),
                n if n.starts_with("X-") => {
                    marker.attributes.push((n.to_string(), value.to_string()))
                }
                _ => {}
            }
        }
        marker.id = id?;
        marker.class = class?;
        marker.start = start?;
        Some(marker)
    }
}

/// `NAME=value` pairs of an attribute list, quotes removed; `None` when it is malformed.
fn attributes(list: &str) -> Option<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let (value, after) = quoted.split_once('"')?;
                (value, after)
            }
            None => after.split_at(after.find(',').unwrap_or(after.len())),
        };
        out.push((name, value));
        rest = match after.strip_prefix(',') {
            Some(r) => r,
            None if after.is_empty() => after,
            None => return None,
        };
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn marker() -> Marker {
        Marker {
            id: "focus-3".into(),
            class: "com.livefront.product".into(),
            start: Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 1).unwrap()
                + chrono::Duration::milliseconds(234),
            end: None,
            attributes: vec![
                ("X-PRODUCT-ID".into(), "p_1".into()),
                ("X-TITLE".into(), "Mug, \"blue\"\nlarge".into()),
            ],
        }
    }

    #[test]
    fn an_open_marker_has_no_end_and_quotes_are_kept_out_of_values() {
        assert_eq!(
            marker().line(),
            "#EXT-X-DATERANGE:ID=\"focus-3\",CLASS=\"com.livefront.product\",\
             START-DATE=\"2026-11-28T10:00:01.234Z\",X-PRODUCT-ID=\"p_1\",\
             X-TITLE=\"Mug, 'blue' large\""
        );
    }

    #[test]
    fn an_ended_marker_has_end_date_and_duration_and_reads_back() {
        let mut m = marker();
        m.end = Some(m.start + chrono::Duration::milliseconds(61_005));
        let line = m.line();
        assert!(
            line.contains(",END-DATE=\"2026-11-28T10:01:02.239Z\",DURATION=61.005,"),
            "{line}"
        );
        let back = Marker::parse_line(&line).unwrap();
        assert_eq!(back.end, m.end);
        assert_eq!(back.start, m.start);
        assert_eq!(back.attributes[1].1, "Mug, 'blue' large");
        // m3u8-rs reads the same line.
        let text = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:2026-11-28T10:00:00.000Z\n{line}\n#EXTINF:2.000,\na.ts\n"
        );
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        let range = parsed.segments[0].daterange.as_ref().unwrap();
        assert_eq!(range.id, "focus-3");
        assert_eq!(range.duration, Some(61.005));
    }

    #[test]
    fn end_date_is_start_date_plus_duration_as_written() {
        let mut m = marker();
        // 0.6 ms past a millisecond, ending 0.2 ms past one: 2.0336 s apart.
        m.start += chrono::Duration::microseconds(600);
        m.end = Some(m.start + chrono::Duration::microseconds(2_033_600));
        let line = m.line();
        let parsed = Marker::parse_line(&line).unwrap();
        let duration = line
            .split("DURATION=")
            .nth(1)
            .and_then(|d| d.split(',').next())
            .unwrap();
        let (s, ms) = duration.split_once('.').unwrap();
        let duration = chrono::Duration::milliseconds(
            s.parse::<i64>().unwrap() * 1000 + ms.parse::<i64>().unwrap(),
        );
        assert_eq!(parsed.start + duration, parsed.end.unwrap(), "{line}");
    }

    #[test]
    fn other_lines_and_incomplete_ranges_are_not_markers() {
        assert_eq!(Marker::parse_line("#EXTINF:2.000,"), None);
        assert_eq!(
            Marker::parse_line("#EXT-X-DATERANGE:ID=\"a\",START-DATE=\"2026-11-28T10:00:00Z\""),
            None,
            "no CLASS"
        );
        assert_eq!(Marker::parse_line("#EXT-X-DATERANGE:ID=\"a"), None);
    }
}
